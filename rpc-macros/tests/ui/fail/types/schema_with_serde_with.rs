use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
pub struct Stamp {
    #[serde(with = "as_text")]
    pub at: u64,
}

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
pub struct Flattened {
    #[serde(flatten)]
    pub inner: Stamp,
}

#[derive(Serialize, Deserialize, ipc_rpc::Schema)]
#[serde(untagged)]
pub enum Either {
    Number(u64),
    Text(String),
}

mod as_text {
    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = <String as serde::Deserialize>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn main() {}
