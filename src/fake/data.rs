//! Realistic, deterministic records for all eleven entities: JSON:API resource objects shaped like
//! Kustomer's documented resource objects, with custom attributes of every type suffix, unicode (emoji, RTL),
//! nulls, nested arrays and relationships that point at real ids.

use serde_json::{Value, json};

use super::rng::Rng;

/// The org id every record belongs to.
pub const ORG: &str = "5a79d3e2c8b66e0001ba953e";
/// Generated data lies in the two years before this instant (ms since the epoch: 2026-01-01).
pub const DATA_END_MS: i64 = 1_767_225_600_000;
/// The length of the data range.
pub const TWO_YEARS_MS: i64 = 730 * 86_400_000;

/// ISO-8601 UTC with milliseconds, as Kustomer writes timestamps.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Ids the generators draw relationships from.
#[derive(Debug, Default, Clone)]
pub struct Pools {
    pub users: Vec<String>,
    pub teams: Vec<String>,
    pub tags: Vec<String>,
    pub queues: Vec<String>,
    pub companies: Vec<String>,
    pub customers: Vec<String>,
    /// (conversation id, its customer id)
    pub conversations: Vec<(String, String)>,
    /// (klass name, klass id)
    pub klasses: Vec<(String, String)>,
}

const FIRST: &[&str] = &[
    "Jane",
    "Omar",
    "Léa",
    "Søren",
    "Mei",
    "Ana",
    "Tomás",
    "Aisha",
    "Noa",
    "Kwame",
    "Yuki",
    "Priya",
    "Zoë",
    "Élodie",
    "Ivan",
    "محمد",
    "فاطمة",
    "נועה",
    "דוד",
    "Björn",
    "Chloé",
    "Raúl",
    "Olu",
    "Hana",
];
const LAST: &[&str] = &[
    "Doe",
    "Haddad",
    "Müller",
    "Núñez",
    "Kowalski",
    "O'Brien",
    "Nakamura",
    "Okafor",
    "Łukasz",
    "Smith",
    "García",
    "Rossi",
    "Dubois",
    "Cohen",
    "Singh",
    "Ivanova",
    "العلي",
    "לוי",
    "Jensen",
    "Silva",
];
const SUBJECTS: &[&str] = &[
    "Where is my order?",
    "Refund request",
    "Can't log in 😕",
    "Change of address",
    "Damaged item 📦",
    "Billing question",
    "Cancel my subscription",
    "Great service! 🎉",
    "طلب استرداد",
    "בעיה בהזמנה",
    "Wrong size delivered",
    "Promo code not working",
    "Question about warranty",
    "Invoice copy",
];
const CHANNELS: &[&str] = &[
    "email",
    "chat",
    "sms",
    "voice",
    "facebook",
    "instagram",
    "whatsapp",
    "twitter-dm",
];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];

/// Numbers as a JavaScript backend prints them that a parse through `f64` would change or that sit
/// at the edges of what JSON numbers can say: 17-digit doubles, negative zero, exponents, the
/// smallest denormal and normal, the largest double, integers past 2^53 and 2^64, long decimals.
/// Customers carry one each (`attributes.custom.ratioNum`), so every suite that compares the mirror
/// with the fake checks that they are kept exactly.
pub const EXACT_NUMBERS: &[&str] = &[
    "123456789.12345679",
    "0.30000000000000004",
    "-0.0",
    "1e21",
    "1e+21",
    "5e-324",
    "2.2250738585072014e-308",
    "1.7976931348623157e308",
    "9007199254740993",
    "18446744073709552000",
    "18446744073709551615",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "0.1000000000000000055511151231257827021181583404541015625",
    "3.14159265358979323846264338327950288",
    "4.35",
];

/// The `i`-th of [`EXACT_NUMBERS`] as a `Value` (the crate keeps number text; chosen by index, so the
/// rest of the generated data does not change).
fn exact_number(i: usize) -> Value {
    let text = EXACT_NUMBERS[i % EXACT_NUMBERS.len()];
    serde_json::from_str(text).unwrap_or(Value::Null)
}
const LOCALES: &[&str] = &[
    "en_US", "en_GB", "fr_FR", "de_DE", "es_ES", "ar_SA", "he_IL", "ja_JP",
];
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/Paris",
    "Asia/Tokyo",
    "Asia/Jerusalem",
    "UTC",
];
/// Klass names and their display names.
pub const KLASSES: &[(&str, &str)] = &[
    ("ecomm-order", "E-commerce order"),
    ("subscription", "Subscription"),
    ("return-request", "Return request"),
    ("loyalty-card", "Loyalty card"),
    ("warranty", "Warranty"),
];

/// Random (createdAt, updatedAt) in the data range; some share an updatedAt with the previous call
/// (natural ties).
pub fn times(rng: &mut Rng, last_updated: &mut i64) -> (i64, i64) {
    let created = DATA_END_MS - TWO_YEARS_MS + rng.below(TWO_YEARS_MS as u64 - 86_400_000) as i64;
    let mut updated = created + rng.below((DATA_END_MS - created) as u64) as i64;
    if rng.chance(0.03) && *last_updated >= created {
        updated = *last_updated;
    }
    *last_updated = updated;
    (created, updated)
}

/// A to-one relationship with its `links.self`.
pub fn rel(kind: &str, id: &str) -> Value {
    let plural = if kind == "company" {
        "companies".to_string()
    } else {
        format!("{kind}s")
    };
    json!({"data": {"type": kind, "id": id}, "links": {"self": format!("/v1/{plural}/{id}")}})
}

fn name(rng: &mut Rng) -> (String, String) {
    (rng.pick(FIRST).to_string(), rng.pick(LAST).to_string())
}

fn some<'a>(rng: &mut Rng, pool: &'a [String], max: u64) -> Vec<&'a str> {
    if pool.is_empty() {
        return Vec::new();
    }
    let n = rng.below(max + 1);
    let mut out: Vec<&str> = (0..n).map(|_| rng.pick(pool).as_str()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// A resource object: `type`, `id`, attributes, relationships (with the org) and `links.self`.
pub fn base(
    kind: &str,
    id: &str,
    path: &str,
    attributes: Value,
    mut relationships: Value,
) -> Value {
    relationships["org"] =
        json!({"data": {"type": "org", "id": ORG}, "links": {"self": format!("/v1/orgs/{ORG}")}});
    json!({"type": kind, "id": id, "attributes": attributes, "relationships": relationships,
           "links": {"self": format!("{path}/{id}")}})
}

/// A user.
pub fn user(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize) -> Value {
    let (first, last) = name(rng);
    let kind = if i % 10 == 9 { "machine" } else { "user" };
    base(
        "user",
        id,
        "/v1/users",
        json!({
            "name": format!("{first} {last}"), "displayName": first,
            "email": format!("agent{i}@acme.example"),
            "mobile": if rng.chance(0.5) { Value::Null } else { json!(format!("+1555{:07}", rng.below(10_000_000))) },
            "userType": kind, "roles": ["org.user", if i == 0 { "org.admin" } else { "org.user.read" }],
            "emailVerifiedAt": iso(c + 3_600_000), "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({}),
    )
}

/// A team with members drawn from the users.
pub fn team(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize, pools: &Pools) -> Value {
    let names = [
        "Billing",
        "Returns",
        "VIP",
        "Tier 1",
        "Tier 2",
        "Escalations",
        "Social",
        "الدعم",
        "תמיכה",
        "Nachtschicht",
    ];
    let n = names[i % names.len()];
    base(
        "team",
        id,
        "/v1/teams",
        json!({
            "name": format!("{n} {}", i / names.len() + 1), "displayName": n, "icon": "users",
            "members": some(rng, &pools.users, 8), "deleted": false,
            "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({"createdBy": rel("user", rng.pick(&pools.users).as_str())}),
    )
}

/// A tag.
pub fn tag(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize) -> Value {
    let names = [
        "vip",
        "refund",
        "bug",
        "shipping",
        "billing",
        "urgent",
        "feedback",
        "🔥hot",
        "churn-risk",
        "b2b",
    ];
    base(
        "tag",
        id,
        "/v1/tags",
        json!({
            "name": format!("{}-{}", names[i % names.len()], i), "color": format!("#{:06x}", rng.below(0xFF_FFFF)),
            "deleted": false, "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({}),
    )
}

/// A queue (the first is the system default queue).
pub fn queue(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize) -> Value {
    let (name, system) = if i == 0 {
        ("DEFAULT_QUEUE".to_string(), true)
    } else {
        (format!("Queue {i}"), false)
    };
    base(
        "queue",
        id,
        "/v1/routing/queues",
        json!({
            "name": name, "displayName": if system { "Default".to_string() } else { format!("Queue {i}") },
            "system": system, "priority": 1 + rng.below(5), "itemSize": 1,
            "restrictTransfersByUsers": rng.chance(0.2),
            "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({}),
    )
}

/// A klass.
pub fn klass(id: &str, c: i64, u: i64, i: usize) -> Value {
    let (name, display) = KLASSES[i % KLASSES.len()];
    base(
        "klass",
        id,
        "/v1/klasses",
        json!({
            "name": name, "displayName": display, "icon": "box", "color": "#4a90e2", "status": "enabled",
            "mixins": [], "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({"kobjects": {"links": {"self": format!("/v1/klasses/{name}")}}}),
    )
}

/// A company.
pub fn company(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize, pools: &Pools) -> Value {
    let (_, last) = name(rng);
    let domain = format!("company{i}.example");
    base(
        "company",
        id,
        "/v1/companies",
        json!({
            "name": format!("{last} & Co {i}"), "externalId": format!("acct-{i}"), "domains": [domain.clone()],
            "emails": [{"email": format!("info@{domain}"), "type": "work"}], "phones": [], "tags": some(rng, &pools.tags, 2),
            "custom": {"segmentStr": rng.pick(&["smb", "mid-market", "enterprise"]), "seatsNum": rng.below(500)},
            "rev": 1 + rng.below(9), "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({"createdBy": rel("user", rng.pick(&pools.users).as_str())}),
    )
}

/// A customer.
pub fn customer(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize, pools: &Pools) -> Value {
    let (first, last) = name(rng);
    let open = rng.below(3);
    let done = rng.below(8);
    let mut relationships = json!({
        "messages": {"links": {"self": format!("/v1/customers/{id}/messages")}},
        "modifiedBy": rel("user", rng.pick(&pools.users).as_str()),
    });
    if !pools.companies.is_empty() && rng.chance(0.5) {
        relationships["company"] = rel("company", rng.pick(&pools.companies).as_str());
    }
    let phones = if rng.chance(0.6) {
        json!([{"phone": format!("+1555{:07}", rng.below(10_000_000)), "type": "mobile", "verified": false}])
    } else {
        json!([])
    };
    base(
        "customer",
        id,
        "/v1/customers",
        json!({
            "name": format!("{first} {last}"), "displayName": format!("{first} {last}"), "firstName": first, "lastName": last,
            "externalId": format!("crm-{i}"),
            "emails": [{"email": format!("customer{i}@example.com"), "type": "home", "verified": rng.chance(0.7)}],
            "phones": phones, "socials": [], "urls": [],
            "locations": if rng.chance(0.3) { json!([{"type": "home", "address": "1 Rue de la Paix, Paris"}]) } else { json!([]) },
            "locale": rng.pick(LOCALES), "timeZone": rng.pick(ZONES),
            "tags": some(rng, &pools.tags, 3),
            "custom": {
                "loyaltyTierStr": rng.pick(TIERS), "lifetimeValueNum": (rng.below(500_000) as f64) / 100.0,
                "vipBool": rng.chance(0.1), "lastOrderAt": if rng.chance(0.2) { Value::Null } else { json!(iso(u - 86_400_000)) },
                "notesTxt": if rng.chance(0.5) { json!("Prefers email. Très sympa 👍") } else { Value::Null },
                "profileUrl": format!("https://shop.example/u/{i}"),
                "ratioNum": exact_number(i),
            },
            "conversationCounts": {"all": open + done, "open": open, "snoozed": 0, "done": done},
            "deleted": false, "verified": rng.chance(0.8), "rev": 1 + rng.below(20),
            "lastActivityAt": iso(u), "lastSeenAt": if rng.chance(0.3) { Value::Null } else { json!(iso(u)) },
            "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        relationships,
    )
}

/// A conversation of `customer`.
pub fn conversation(
    rng: &mut Rng,
    id: &str,
    customer: &str,
    c: i64,
    u: i64,
    pools: &Pools,
) -> Value {
    let status = *rng.pick(&["open", "open", "snoozed", "done", "done", "done"]);
    let inbound = 1 + rng.below(5);
    let outbound = rng.below(5);
    let channel = *rng.pick(CHANNELS);
    // Response and resolution times within the record's own lifetime (first response 1 min–8 h).
    let span = (u - c).max(2);
    let response_ms = (60_000 + rng.below(8 * 3_600_000) as i64)
        .min(span / 2)
        .max(1);
    let first_response = if outbound > 0 {
        json!({"createdAt": iso(c + response_ms), "time": response_ms / 1000, "businessTime": response_ms / 1200})
    } else {
        Value::Null
    };
    let first_done = if status == "done" {
        let done_ms = response_ms + rng.below((span - response_ms).max(1) as u64) as i64;
        json!({"createdAt": iso(c + done_ms), "time": done_ms / 1000})
    } else {
        Value::Null
    };
    let mut rels = json!({
        "customer": rel("customer", customer),
        "messages": {"links": {"self": format!("/v1/conversations/{id}/messages")}},
        "brand": {"data": {"type": "brand", "id": "5cb3a1b7c9e77c0013e5f100"}},
        "createdBy": rel("user", rng.pick(&pools.users).as_str()),
    });
    if !pools.queues.is_empty() {
        rels["queue"] = json!({"data": {"type": "queue", "id": rng.pick(&pools.queues).as_str()}});
    }
    base(
        "conversation",
        id,
        "/v1/conversations",
        json!({
            "name": rng.pick(SUBJECTS), "preview": "Hi, my order #4417 … 😊", "channels": [channel],
            "status": status, "priority": 1 + rng.below(5), "direction": if rng.chance(0.85) { "in" } else { "out" },
            "messageCount": inbound + outbound, "inboundMessageCount": inbound, "outboundMessageCount": outbound,
            "noteCount": rng.below(3), "tags": some(rng, &pools.tags, 3),
            "assignedUsers": some(rng, &pools.users, 2), "assignedTeams": some(rng, &pools.teams, 1),
            "custom": {"orderNumberStr": format!("{}", 1000 + rng.below(90_000)), "refundAmountNum": if rng.chance(0.2) { json!(rng.below(20_000) as f64 / 100.0) } else { Value::Null }},
            "firstResponse": first_response, "firstDone": first_done, "doneCount": u64::from(status == "done"), "reopenCount": rng.below(2),
            "satisfaction": if rng.chance(0.3) { json!(1 + rng.below(5)) } else { Value::Null },
            "ended": status == "done", "spam": rng.chance(0.01), "rev": 1 + rng.below(10),
            "lastMessageAt": iso(u), "lastActivityAt": iso(u),
            "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        rels,
    )
}

/// A message in `conversation` of `customer`.
pub fn message(
    rng: &mut Rng,
    id: &str,
    conversation: &str,
    customer: &str,
    c: i64,
    u: i64,
    pools: &Pools,
) -> Value {
    let inbound = rng.chance(0.55);
    let channel = *rng.pick(CHANNELS);
    let subject = *rng.pick(SUBJECTS);
    base(
        "message",
        id,
        "/v1/messages",
        json!({
            "channel": channel, "app": if channel == "email" { "postmark" } else { channel },
            "direction": if inbound { "in" } else { "out" },
            "directionType": if inbound { *rng.pick(&["initial-in", "response-in", "followup-in"]) } else { *rng.pick(&["response-out", "initial-out", "followup-out"]) },
            "status": if inbound { "received" } else { "sent" }, "subject": subject,
            "preview": format!("{subject} — مرحبا / שלום / hello 👋"), "size": 200 + rng.below(5_000),
            "meta": {"from": format!("customer@example.com"), "to": [{"email": "support@acme.example"}], "cc": [], "subject": subject},
            "auto": rng.chance(0.05), "redacted": false, "lang": "en",
            "createdByTeams": some(rng, &pools.teams, 1), "sentAt": iso(c), "rev": 1,
            "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({
            "customer": rel("customer", customer), "conversation": rel("conversation", conversation),
            "createdBy": rel("user", rng.pick(&pools.users).as_str()),
        }),
    )
}

/// A note on `conversation`.
pub fn note(
    rng: &mut Rng,
    id: &str,
    conversation: &str,
    customer: &str,
    c: i64,
    u: i64,
    pools: &Pools,
) -> Value {
    base(
        "note",
        id,
        "/v1/notes",
        json!({
            "body": *rng.pick(&["Checked warehouse, ships tomorrow.", "Escalated to billing 💳", "Customer called back; resolved.", "ملاحظة داخلية", "הערה פנימית"]),
            "createdByTeams": some(rng, &pools.teams, 1),
            "createdAt": iso(c), "updatedAt": iso(u), "modifiedAt": iso(u),
        }),
        json!({
            "customer": rel("customer", customer), "conversation": rel("conversation", conversation),
            "createdBy": rel("user", rng.pick(&pools.users).as_str()),
        }),
    )
}

/// A custom object of `klass` belonging to `customer`.
pub fn kobject(
    rng: &mut Rng,
    id: &str,
    klass: (&str, &str),
    customer: &str,
    c: i64,
    u: i64,
    i: usize,
) -> Value {
    let (name, klass_id) = klass;
    let mut v = base(
        "kobject",
        id,
        &format!("/v1/klasses/{name}"),
        json!({
            "title": format!("{} #{}", name, 1000 + i), "description": if rng.chance(0.3) { Value::Null } else { json!(format!("{} items", 1 + rng.below(5))) },
            "externalId": format!("{name}-{i}"), "icon": "box", "images": [], "tags": [],
            "custom": {"statusStr": rng.pick(&["new", "shipped", "delivered", "returned"]), "totalNum": rng.below(100_000) as f64 / 100.0,
                       "giftBool": rng.chance(0.1), "dueAt": iso(c + 7 * 86_400_000), "trackingUrl": format!("https://track.example/{i}")},
            "rev": 1 + rng.below(5), "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({"klass": {"data": {"type": "klass", "id": klass_id}}, "customer": rel("customer", customer)}),
    );
    v["links"]["self"] = json!(format!("/v1/klasses/{name}/{id}"));
    v
}
