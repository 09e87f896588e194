//! The canonical text against independent oracles: serde_json's own printer (which, with the
//! crate's `arbitrary_precision`, prints numbers as their text) on everything it can parse, and
//! hand-written literals for what it cannot (lone surrogates) or where exactness is the point.

use serde_json::Value;

use super::diff::Diff;
use super::{Record, Rejected};

fn record(text: &str) -> Result<Record, Rejected> {
    Record::from_text(text.as_bytes())
}

/// What serde_json prints for the text parsed as a `Value` (keys sorted, last duplicate wins).
fn serde_canonical(text: &str) -> String {
    serde_json::from_str::<Value>(text).unwrap().to_string()
}

/// `value` written with every object's keys in reverse order and spaces between tokens.
fn reversed(value: &Value) -> String {
    match value {
        Value::Object(map) => {
            let members: Vec<String> = map
                .iter()
                .rev()
                .map(|(k, v)| format!("{} : {}", Value::String(k.clone()), reversed(v)))
                .collect();
            format!("{{ {} }}", members.join(" , "))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(reversed).collect();
            format!("[ {} ]", items.join(", "))
        }
        other => other.to_string(),
    }
}

#[test]
fn canonical_text_is_what_serde_json_prints_for_awkward_objects() {
    for text in [
        r#"{"id":"a","b":1,"a":2}"#,
        r#"{"id":"a","x":1,"x":{"y":2},"attributes":{"updatedAt":"t1"},"attributes":{"deleted":true}}"#,
        r#"{"id":"a","attributes":{"updatedAt":"t1","updatedAt":5,"deletedAt":"d","deleted":"yes"}}"#,
        r#"{"id":"a","attributes":"not an object"}"#,
        r#"{"id":7,"n":[0,-0,1.0,1e+3,-2.5e-7,18446744073709551615,-9223372036854775808,0.1]}"#,
        r#"{"id":1.5}"#,
        r#"{"id":"a","s":"tab\t nl\n quote\" back\\ uni\u00e9 ✍️ \ud83d\ude00 ctl\u0001 slash\/ del"}"#,
        r#"{"id":"a","k\u0065y":"escaped key","key":"plain","é":1,"Z":2,"a":3,"":4}"#,
        r#"{"id":"a","nested":{"z":[{"b":1,"a":[]},{}],"a":null,"m":{"c":true,"b":false}}}"#,
        r#"{"id":"a","attributes":{"custom":{"zStr":1,"a\"b":{"x":1},"aNum":2,"zStr":3}}}"#,
        "{ \"id\" : \"a\" ,\n\t\"w\" : [ 1 , 2 ] }",
    ] {
        assert_eq!(record(text).unwrap().data, serde_canonical(text), "{text}");
    }
}

#[test]
fn picked_fields_follow_the_last_duplicate() {
    let r = record(
        r#"{"id":"a","attributes":{"updatedAt":"t1","custom":{"aStr":1}},"attributes":{"custom":{"bStr":1},"deleted":true}}"#,
    )
    .unwrap();
    assert_eq!(r.updated_at, None);
    assert!(r.deleted);
    assert_eq!(r.custom, vec!["bStr".to_string()]);
    let r = record(r#"{"id":"a","attributes":{"custom":{"aStr":1},"custom":["x"]}}"#).unwrap();
    assert!(r.custom.is_empty());
    let r = record(r#"{"id":{"x":1},"id":"b"}"#).unwrap();
    assert_eq!(r.id, "b");
    assert!(record(r#"{"id":"b","id":{"x":1}}"#).is_err());
    assert_eq!(
        record(r#"{"id":12345678901234567890123}"#).unwrap().id,
        "12345678901234567890123"
    );
}

/// Every number of issue 14's list, as a JavaScript backend prints it, stays its own text.
#[test]
fn numbers_are_stored_as_the_text_served() {
    let served = [
        "123456789.12345679",
        "0.30000000000000004",
        "-0.0",
        "-0",
        "1e21",
        "1e+21",
        "1E-7",
        "5e-324",
        "2.2250738585072014e-308",
        "1.7976931348623157e308",
        "9007199254740993",
        "18446744073709552000",
        "18446744073709551616",
        "-9223372036854775809",
        "123456789012345678901234567890",
        "3.141592653589793238462643383279502884197",
        "0.1000000000000000055511151231257827021181583404541015625",
    ];
    for n in served {
        let text = format!(r#"{{"id":"x","attributes":{{"custom":{{"ratioNum":{n}}}}}}}"#);
        let r = record(&text).unwrap();
        assert_eq!(
            r.data,
            format!(r#"{{"attributes":{{"custom":{{"ratioNum":{n}}}}},"id":"x"}}"#)
        );
    }
}

#[test]
fn canonical_text_is_what_serde_json_prints_for_every_record_the_fake_serves_in_any_key_order() {
    let state = crate::fake::state_for_tests();
    let mut checked = 0;
    for (entity, records) in state {
        for value in records {
            let served = value.to_string();
            let a = record(&served).unwrap();
            assert_eq!(a.data, served, "{entity}");
            let b = record(&reversed(&value)).unwrap();
            assert_eq!(a.data, b.data, "{entity}");
            assert_eq!(a.hash, b.hash);
            checked += 1;
        }
    }
    assert!(checked > 1_000, "{checked}");
}

#[test]
fn diffs_name_each_changed_leaf_with_exact_old_and_new_text() {
    let old = r#"{"attributes":{"custom":{"aNum":0.30000000000000004,"gone":1},"name":"x","tags":["a"]},"id":"r"}"#;
    let new = r#"{"attributes":{"custom":{"aNum":0.3,"new":{"k":"\ud83d"}},"name":"x","tags":["a","b"]},"id":"r"}"#;
    let diff = Diff::between(old, new).unwrap();
    assert_eq!(
        diff.to_json(),
        r#"{"attributes.custom.aNum":{"new":0.3,"old":0.30000000000000004},"attributes.custom.gone":{"new":null,"old":1},"attributes.custom.new":{"new":{"k":"\ud83d"},"old":null},"attributes.tags":{"new":["a","b"],"old":["a"]}}"#
    );
    assert!(Diff::between(new, new).unwrap().is_empty());
    // A member set to null and a member removed are the same to the log.
    assert!(Diff::between(r#"{"a":null}"#, "{}").unwrap().is_empty());
    assert!(Diff::between("{", "{}").is_err());
}

#[test]
fn nesting_is_refused_past_128_levels_without_overflowing_the_stack() {
    let nested = |arrays: usize| {
        format!(
            r#"{{"id":"a","n":{}{}}}"#,
            "[".repeat(arrays),
            "]".repeat(arrays)
        )
    };
    // The record object is level 1: 127 arrays inside it make 128 levels.
    assert!(record(&nested(127)).is_ok());
    let refused = record(&nested(128)).unwrap_err();
    assert!(
        refused.reason.contains("nested deeper than 128 levels"),
        "{refused:?}"
    );
    assert_eq!(refused.id.as_deref(), Some("a"));
    assert!(record(&nested(100_000)).is_err());
}
