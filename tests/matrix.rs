//! The transport matrix: every test in `suite` runs over every transport.
//!
//! Test names come out as `unix::round_trip_nested_values`, so
//! `cargo nextest run -E 'test(/^tcp::/)'` selects one transport. The transports come
//! from the table in `common` (`transport_table!`): adding one there adds it here;
//! `tls` (feature `tls`) runs the same tests as `tls::…`.

#[macro_use]
mod common;
#[path = "matrix/push.rs"]
mod push;
#[path = "matrix/suite.rs"]
mod suite;

macro_rules! matrix {
    (transports: [$($transport:ident),* $(,)?], tests: $tests:tt) => {
        $( matrix!(@one $transport $tests); )*
    };
    (@one $transport:ident [$($test:ident),* $(,)?]) => {
        mod $transport {
            $(
                #[test]
                fn $test() {
                    crate::common::serve_if_child();
                    crate::suite::client_child();
                    let name = crate::common::test_name(module_path!(), stringify!($test));
                    crate::suite::$test(crate::common::Transport::$transport, name);
                }
            )*
        }
    };
}

/// The test list, handed to `matrix!` with the transports it runs over.
macro_rules! every_test {
    ($($transports:tt)*) => { matrix! { $($transports)*
    tests: [
        round_trip_nested_values,
        empty_and_4mib_payloads_round_trip,
        large_byte_strings_arrive_intact_in_any_position,
        parted_requests_are_checked_like_any_other,
        app_error_reaches_caller_as_value,
        unit_and_zero_argument_methods_work,
        timeout_returns_timeout_and_client_stays_usable,
        handler_panic_becomes_remote_panic_and_server_keeps_serving,
        other_service_is_incompatible,
        changed_and_missing_methods_fail_alone,
        eight_threads_share_one_client,
        eight_connections_at_once,
        server_killed_mid_call_returns_disconnected,
        server_killed_between_calls_returns_disconnected,
        server_shutdown_returns_disconnected,
        oversized_request_is_refused_and_connection_survives,
        oversized_reply_is_refused_and_connection_survives,
        malformed_frames_close_only_that_connection,
        second_server_on_live_endpoint_is_addr_in_use,
        connect_to_missing_server_fails_clearly,
        client_drop_closes_server_connection,
        silent_connections_do_not_hold_up_others,
        sixty_four_clients_and_eight_shared_threads_under_load,
        client_killed_mid_call_leaves_the_server_serving,
        slow_consumer_does_not_hold_up_others,
        random_bytes_and_a_connect_flood_leave_the_server_serving,
        callers_with_and_without_deadlines_never_strand_each_other,
        a_fast_call_is_not_held_up_by_a_slow_one_on_the_same_client,
        handlers_see_the_callers_deadline,
        a_handler_sees_cancelled_after_its_caller_times_out,
        a_handler_sees_cancelled_after_its_client_is_killed,
        a_request_whose_deadline_passed_is_not_run,
        shutdown_returns_within_its_grace_while_a_handler_never_returns,
        max_in_flight_bounds_the_calls_of_a_connection_that_run_at_once,
        max_workers_bounds_the_calls_a_server_runs_at_once,
        eight_callers_of_a_slow_handler_on_one_client_run_in_parallel,
        max_connections_refuses_the_next_client_promptly,
        a_handler_sees_cancelled_when_the_server_shuts_down,
        connect_to_a_stopped_server_times_out_and_says_so,
        a_request_over_the_servers_max_frame_is_refused_before_it_is_sent,
        a_reply_over_the_clients_max_frame_is_an_error_for_that_call_only,
        connect_to_a_killed_servers_endpoint_says_stale,
        a_signal_shuts_the_server_down_and_removes_its_objects,
        close_closes_the_connection_for_every_clone,
        cleanup_removes_a_killed_servers_objects_and_refuses_a_live_ones,
        subscription_events_arrive_in_order_and_complete,
        subscription_events_sent_after_the_handler_returned_arrive,
        dropping_a_subscription_makes_the_servers_send_fail,
        server_killed_during_a_subscription_ends_it_disconnected,
        a_subscriber_that_stops_reading_does_not_delay_calls,
        a_hundred_subscriptions_share_one_connection,
        a_handler_that_panics_ends_its_subscription_with_remote_panic,
        a_full_subscriber_buffer_fails_try_send_and_times_send_out,
        more_handlers_streaming_than_max_in_flight_all_complete,
        callers_and_subscribers_sharing_a_client_all_get_theirs,
        hand_written_subscription_frames_are_checked,
    ]
} } }

with_transports! { every_test! {} }

#[cfg(feature = "tls")]
every_test! { transports: [tls], }
