//! The byte decoder (`record`) fuzzed: it is hand-written and reads untrusted input. On arbitrary
//! bytes it never panics; on arbitrary valid JSON the stored text equals what serde_json (with
//! `arbitrary_precision`, as the crate builds it) reads from the same bytes and prints — an
//! independent implementation. `tests/fixtures/decoder/` is the corpus, run on every test run;
//! `PROPTEST_CASES` sets the budget of generated cases (CI uses the default below).

use proptest::prelude::*;
use serde_json::Value;

use kustomer_mirror::record::Record;

/// Generated cases per property when `PROPTEST_CASES` does not say.
const CASES: u32 = 1_500;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // The corpus is the repo's; proptest's own regression files are not kept.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// What serde_json reads from `bytes` and prints, when it reads them at all.
fn serde_text(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .map(|v| v.to_string())
}

/// The property every generator checks: no panic; valid JSON that is an object with a usable id is
/// a record whose text serde_json reads as the same value as the input. With `exact`, for input
/// whose numbers are written as serde_json prints them (it writes `0e0` as `0e+0`, where the mirror
/// keeps the served token), the stored text is serde_json's, byte for byte.
fn check(bytes: &[u8], exact: bool) -> Result<(), TestCaseError> {
    let decoded = Record::from_text(bytes);
    if let (Some(expected), Some(Value::Object(map))) = (
        serde_text(bytes),
        serde_json::from_slice::<Value>(bytes).ok(),
    ) {
        let usable_id = match map.get("id") {
            Some(Value::String(s)) => !s.is_empty(),
            Some(Value::Number(_)) => true,
            _ => false,
        };
        if usable_id {
            let record =
                decoded.map_err(|r| TestCaseError::fail(format!("rejected: {}", r.reason)))?;
            prop_assert_eq!(serde_text(record.data.as_bytes()), Some(expected.clone()));
            if exact {
                prop_assert_eq!(record.data, expected);
            }
        }
    }
    Ok(())
}

/// Number tokens as JSON allows them (any length, every exponent form), not as f64 prints them.
fn number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"
}

/// Number tokens as serde_json prints them back (an exponent always signed, lowercase `e`).
fn printed_number() -> impl Strategy<Value = String> {
    "-?(0|[1-9][0-9]{0,30})(\\.[0-9]{1,20})?(e[+-][0-9]{1,3})?"
}

fn json_with(number: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        Just("false".to_string()),
        number,
        any::<String>().prop_map(|s| Value::String(s).to_string()),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((any::<String>(), inner), 0..6).prop_map(|members| {
                let body: Vec<String> = members
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k)))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// A resource object: an id, maybe attributes, other members of any JSON, with whitespace
/// between tokens sometimes.
fn record() -> impl Strategy<Value = String> {
    record_with(number().boxed())
}

fn record_with(number: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    (
        prop_oneof![
            any::<String>().prop_map(|s| Value::String(s).to_string()),
            number.clone()
        ],
        prop::collection::vec((any::<String>(), json_with(number)), 0..6),
        prop::bool::ANY,
    )
        .prop_map(|(id, members, spaced)| {
            let sep = if spaced { " , \n" } else { "," };
            let mut body = vec![format!("\"id\":{id}")];
            body.extend(
                members
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", Value::String(k))),
            );
            format!("{{{}}}", body.join(sep))
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Record::from_text(&bytes);
    }

    #[test]
    fn arbitrary_json_records_are_stored_as_serde_json_prints_them(text in record_with(printed_number().boxed())) {
        check(text.as_bytes(), true)?;
    }

    #[test]
    fn records_with_any_number_form_keep_their_value(text in record()) {
        check(text.as_bytes(), false)?;
    }

    #[test]
    fn damaged_json_never_panics(text in record(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
        let mut bytes = text.into_bytes();
        if !bytes.is_empty() {
            let i = cut.index(bytes.len());
            bytes[i] ^= flip;
            let _ = Record::from_text(&bytes);
            bytes.truncate(i);
        }
        check(&bytes, false)?;
    }
}

#[test]
fn the_corpus_decodes_without_panic_and_as_serde_json_reads_it() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/decoder");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        check(&bytes, false).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
    }
    assert!(n >= 10, "the corpus has {n} files");
}
