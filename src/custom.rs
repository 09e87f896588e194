//! The naming rules of the per-org custom attribute views, shared by both destinations: which view a
//! table (or klass) gets, and which column, of which kind, each attribute under `attributes.custom`
//! becomes. Kustomer's name suffix gives the kind (`Str`/`Txt`/`Url` text, `Num` number, `At` time,
//! `Bool` flag); names become snake_case, the suffix dropped unless two attributes would collide.
//! Knows no SQL: `mirror::views` plans the columns, and `sqlite::views` and `postgres::views` render
//! them in their own dialect.

use std::collections::BTreeSet;

/// What a custom attribute's column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (and any attribute without a known suffix).
    Text,
    /// A number (`…Num`).
    Number,
    /// A time (`…At`).
    Time,
    /// A flag (`…Bool`).
    Bool,
}

/// `loyaltyTierStr` → (`loyalty_tier`, [`Kind::Text`], `str`).
pub fn column_for(name: &str) -> (String, Kind, &'static str) {
    let (stem, kind, suffix) = [
        ("Str", Kind::Text, "str"),
        ("Txt", Kind::Text, "txt"),
        ("Url", Kind::Text, "url"),
        ("Num", Kind::Number, "num"),
        ("At", Kind::Time, "at"),
        ("Bool", Kind::Bool, "bool"),
    ]
    .iter()
    .find_map(|(s, k, l)| {
        name.strip_suffix(s)
            .filter(|stem| !stem.is_empty())
            .map(|stem| (stem, *k, *l))
    })
    .unwrap_or((name, Kind::Text, ""));
    let mut out = String::new();
    for (i, c) in stem.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let mut out = out.trim_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out = format!("custom_{out}");
    }
    (out, kind, suffix)
}

/// The longest identifier: PostgreSQL's limit (63 bytes; it cuts longer names silently, so two long
/// names could become one), applied on SQLite too so that both schemas name things alike.
pub const MAX_IDENTIFIER: usize = 63;

/// `base` (already of `[a-z0-9_]`) bounded to [`MAX_IDENTIFIER`] bytes: a longer one is cut and
/// ends in `_` and 8 hex digits of a hash of `exact` (the name it was made from, exactly as served),
/// so two names that share their first 63 bytes stay apart, and a name's identifier depends on that
/// name alone.
pub fn bounded(base: &str, exact: &str) -> String {
    if base.len() <= MAX_IDENTIFIER {
        return base.to_string();
    }
    let hash = xxhash_rust::xxh3::xxh3_64(exact.as_bytes()) >> 32;
    // The base is ASCII, so any byte index is a character boundary.
    let keep = MAX_IDENTIFIER - 9;
    format!("{}_{hash:08x}", &base[..keep])
}

/// The columns of a view showing `names`, in name order: (attribute name, column, kind). Columns
/// that would collide keep their suffix; any still taken (or reserved: `id`, `updated_at`,
/// `deleted_at`, `klass`) get `_` appended. Every column is at most [`MAX_IDENTIFIER`] bytes of
/// `[a-z0-9_]` and unique within the view, whatever the names hold.
pub fn columns(names: &BTreeSet<String>) -> Vec<(String, String, Kind)> {
    let reserved = ["id", "updated_at", "deleted_at", "klass"];
    let mut used: BTreeSet<String> = reserved.iter().map(|s| s.to_string()).collect();
    let planned: Vec<(String, String, Kind, &str)> = names
        .iter()
        .map(|n| {
            let (col, kind, suffix) = column_for(n);
            (n.clone(), col, kind, suffix)
        })
        .collect();
    let mut out = Vec::new();
    for (name, col, kind, suffix) in &planned {
        let clash = planned.iter().filter(|(_, c, _, _)| c == col).count() > 1;
        let base = if clash && !suffix.is_empty() {
            format!("{col}_{suffix}")
        } else {
            col.clone()
        };
        let mut column = bounded(&base, name);
        let mut tries = 0u32;
        while used.contains(&column) {
            tries += 1;
            // Short names take another `_`; a cut one (its hash collided) hashes the name again
            // with the count of tries, which ends: each try is a new hash.
            column = if base.len() + tries as usize <= MAX_IDENTIFIER {
                format!("{base}{}", "_".repeat(tries as usize))
            } else {
                bounded(&format!("{base}_"), &format!("{name}\u{0}{tries}"))
            };
        }
        used.insert(column.clone());
        out.push((name.clone(), column, *kind));
    }
    out
}

/// `name` as the inside of a JSON string: `"` and `\` escaped, control characters (NUL included)
/// as `\u00XX`, everything else as is. SQLite reads such escapes in a quoted key of a JSON path,
/// so any attribute name (dots, brackets, `$`, quotes included) can be addressed.
pub fn json_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        match c {
            '"' => out.push_str("\\u0022"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// The `sync_state` key a view belongs to (`customers`, `kobjects:<klass>`): the entity that
/// `view_problems` and `status` report a view's trouble under.
pub fn view_entity(table: &str, klass: Option<&str>) -> String {
    match klass {
        Some(k) => format!("{table}:{k}"),
        None => table.to_string(),
    }
}

/// The custom view of `table` (of `klass` for kobjects); `None` for tables without custom attributes.
///
/// A klass name of lowercase letters, digits and `-` maps to `kobjects_<name with - as _>_custom`
/// (`ecomm-order` → `kobjects_ecomm_order_custom`): that mapping is one-to-one on such names. Any
/// other name (with `_`, capitals or other characters) gets the same mapping (lowercased, anything
/// else as `_`) plus `_` and 8 hex digits of a hash of the exact name, so `a-b` and `a_b` (or `Order`
/// and `order`) never share a view, and each name's view depends on that name alone.
pub fn view_name(table: &str, klass: Option<&str>) -> Option<String> {
    let entity = crate::entity::by_name(table).filter(|e| e.custom_views)?;
    match (entity.per_klass(), klass) {
        (true, Some(k)) => {
            let plain = k
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            let safe: String = k
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            // The `_custom` suffix is kept whole; the rest is bounded like any identifier.
            let room = MAX_IDENTIFIER - "_custom".len();
            let stem = if plain {
                format!("{table}_{safe}")
            } else {
                let hash = xxhash_rust::xxh3::xxh3_64(k.as_bytes());
                format!("{table}_{safe}_{:08x}", hash >> 32)
            };
            let stem = if stem.len() <= room {
                stem
            } else {
                let hash = xxhash_rust::xxh3::xxh3_64(k.as_bytes()) >> 32;
                format!("{}_{hash:08x}", &stem[..room - 9])
            };
            Some(format!("{stem}_custom"))
        }
        (true, None) => None,
        (false, _) => Some(format!("{table}_custom")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_safe_typed_columns() {
        assert_eq!(
            column_for("loyaltyTierStr"),
            ("loyalty_tier".to_string(), Kind::Text, "str")
        );
        assert_eq!(column_for("lifetimeValueNum").1, Kind::Number);
        assert_eq!(column_for("vipBool").1, Kind::Bool);
        assert_eq!(column_for("lastOrderAt").0, "last_order");
        assert_eq!(column_for("lastOrderAt").1, Kind::Time);
        assert_eq!(column_for("weird name!").0, "weird_name");
        assert_eq!(column_for("2fast").0, "custom_2fast");
        let names: BTreeSet<String> = ["tierStr", "tierNum", "id"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let cols: Vec<String> = columns(&names).into_iter().map(|c| c.1).collect();
        assert_eq!(cols, ["id_", "tier_num", "tier_str"]);
    }

    #[test]
    fn klass_names_that_map_alike_get_distinct_stable_views() {
        assert_eq!(
            view_name("kobjects", Some("ecomm-order")).as_deref(),
            Some("kobjects_ecomm_order_custom")
        );
        let names: Vec<String> = ["a-b", "a_b", "A-b", "a.b", "a b"]
            .iter()
            .map(|k| view_name("kobjects", Some(k)).unwrap())
            .collect();
        // Literals, so a change of the rule (which would rename users' views) fails here.
        assert_eq!(
            names,
            [
                "kobjects_a_b_custom",
                "kobjects_a_b_3f0c684c_custom",
                "kobjects_a_b_bcf07b1f_custom",
                "kobjects_a_b_390c9ebb_custom",
                "kobjects_a_b_8044f8a6_custom",
            ]
        );
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Names as hostile data has them: any characters (control characters and NUL included), short
    /// or far past 63 bytes, often sharing a long prefix.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z\\x00-\\x1f\"'\\\\.\\[\\]$ ]{0,12}(Str|Num|At|Bool|)",
            ("[a-z]{60,70}", "[A-Za-z\\x00]{0,4}(Str|Num|)").prop_map(|(a, b)| a + &b),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn columns_are_valid_bounded_unique_and_stable(names in prop::collection::btree_set(name(), 0..12)) {
            let cols = columns(&names);
            prop_assert_eq!(cols.len(), names.len());
            let mut seen = BTreeSet::new();
            for (name, column, _) in &cols {
                prop_assert!(names.contains(name));
                prop_assert!(!column.is_empty() && column.len() <= MAX_IDENTIFIER, "{column:?}");
                prop_assert!(column.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{column:?}");
                prop_assert!(!column.starts_with(|c: char| c.is_ascii_digit()), "{column:?}");
                prop_assert!(!["id", "updated_at", "deleted_at", "klass"].contains(&column.as_str()));
                prop_assert!(seen.insert(column.clone()), "{column:?} twice");
            }
            // Stable: the same names give the same columns, run after run.
            prop_assert_eq!(&columns(&names), &cols);
        }

        #[test]
        fn klass_views_are_valid_bounded_and_distinct(a in name(), b in name()) {
            let va = view_name("kobjects", Some(&a)).unwrap();
            let vb = view_name("kobjects", Some(&b)).unwrap();
            for v in [&va, &vb] {
                prop_assert!(v.len() <= MAX_IDENTIFIER, "{v:?}");
                prop_assert!(v.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'), "{v:?}");
                prop_assert!(v.starts_with("kobjects_") && v.ends_with("_custom"), "{v:?}");
            }
            prop_assert_eq!(va == vb, a == b, "{} {}", va, vb);
        }
    }
}
