//! `metadata` objects and `metadata_merge_mode` (SCFM "Metadata").

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMode {
    /// Top-level keys of the update replace the same keys; other keys stay.
    #[default]
    Merge,
    /// The update becomes the whole metadata.
    Replace,
    /// Objects are merged recursively; anything else is replaced.
    DeepMerge,
}

impl MergeMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "merge" => Some(Self::Merge),
            "replace" => Some(Self::Replace),
            "deep_merge" => Some(Self::DeepMerge),
            _ => None,
        }
    }
}

/// Apply `update` to `current` by `mode`.
pub fn apply(current: &Map<String, Value>, update: Map<String, Value>, mode: MergeMode) -> Map<String, Value> {
    match mode {
        MergeMode::Replace => update,
        MergeMode::Merge => {
            let mut out = current.clone();
            out.extend(update);
            out
        }
        MergeMode::DeepMerge => {
            let mut out = current.clone();
            deep_merge_into(&mut out, update);
            out
        }
    }
}

fn deep_merge_into(target: &mut Map<String, Value>, update: Map<String, Value>) {
    for (k, v) in update {
        match (target.get_mut(&k), v) {
            (Some(Value::Object(existing)), Value::Object(incoming)) => deep_merge_into(existing, incoming),
            (_, v) => {
                target.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_three_modes() {
        let cur = obj(json!({"a": 1, "n": {"x": 1, "y": 2}}));
        let upd = obj(json!({"b": 2, "n": {"y": 3}}));
        assert_eq!(
            Value::Object(apply(&cur, upd.clone(), MergeMode::Replace)),
            json!({"b": 2, "n": {"y": 3}})
        );
        assert_eq!(
            Value::Object(apply(&cur, upd.clone(), MergeMode::Merge)),
            json!({"a": 1, "b": 2, "n": {"y": 3}})
        );
        assert_eq!(
            Value::Object(apply(&cur, upd, MergeMode::DeepMerge)),
            json!({"a": 1, "b": 2, "n": {"x": 1, "y": 3}})
        );
    }
}
