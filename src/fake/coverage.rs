//! The resources the fake serves beyond the original eleven: routing work sessions, SLAs,
//! business-hour schedules (with their holidays), snooze options, brands, shortcuts, satisfaction
//! forms, team routing settings and AI assistants, plus the `sla` and `satisfactionLevel`
//! attributes of conversations. Everything here is generated after the original data from its own
//! RNG (`seed ^ SALT`), so the original records and the RNG that later mutations draw from are
//! exactly what they were before these resources existed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Scale;
use super::data::{DATA_END_MS, Pools, TWO_YEARS_MS, base, iso, rel};
use super::rng::Rng;
use super::table::{Rec, Table};

/// Mixed into the seed for the RNG of everything generated here.
pub const SALT: u64 = 0x5EED_C0FE;

/// A resource added here: its table key (the mirror's entity name) and its GET list path.
pub struct Resource {
    pub key: &'static str,
    pub path: &'static str,
}

/// The nine resources, in the order of `state::ENTITIES`.
pub const RESOURCES: [Resource; 9] = [
    Resource {
        key: "work_sessions",
        path: "/v1/routing/work-sessions",
    },
    Resource {
        key: "slas",
        path: "/v1/slas",
    },
    Resource {
        key: "schedules",
        path: "/v1/schedules",
    },
    Resource {
        key: "snoozes",
        path: "/v1/snoozes",
    },
    Resource {
        key: "brands",
        path: "/v1/brands",
    },
    Resource {
        key: "shortcuts",
        path: "/v1/shortcuts",
    },
    Resource {
        key: "satisfaction_forms",
        path: "/v1/satisfaction",
    },
    Resource {
        key: "team_routing_settings",
        path: "/v1/routing/settings",
    },
    Resource {
        key: "assistants",
        path: "/v1/ai/automations",
    },
];

/// Table key of schedules' holidays (served only as included objects and by id).
pub const HOLIDAYS: &str = "holidays";
/// Path of a holiday by id.
pub const HOLIDAYS_PATH: &str = "/v1/holidays";

/// The resource whose list path has exactly these segments (after `/v1/`).
pub fn by_segments(segs: &[&str]) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| {
        let path: Vec<&str> = r
            .path
            .trim_start_matches("/v1/")
            .split('/')
            .collect::<Vec<_>>();
        path.as_slice() == segs
    })
}

/// The resource of a table key.
pub fn by_key(key: &str) -> Option<&'static Resource> {
    RESOURCES.iter().find(|r| r.key == key)
}

/// How many of each resource a scale has (team routing settings: one per team).
pub struct Counts {
    pub work_sessions: usize,
    pub slas: usize,
    pub schedules: usize,
    pub snoozes: usize,
    pub brands: usize,
    pub shortcuts: usize,
    pub satisfaction_forms: usize,
    pub assistants: usize,
}

pub fn counts(scale: Scale) -> Counts {
    let (work_sessions, slas, schedules, snoozes, brands, shortcuts, forms, assistants) =
        match scale {
            Scale::Small => (300, 3, 2, 4, 2, 20, 2, 2),
            Scale::Medium => (3_000, 5, 3, 6, 3, 150, 3, 4),
            Scale::Large => (20_000, 8, 4, 8, 5, 600, 4, 6),
        };
    Counts {
        work_sessions,
        slas,
        schedules,
        snoozes,
        brands,
        shortcuts,
        satisfaction_forms: forms,
        assistants,
    }
}

/// The id the original conversations' `brand` relationship names: the default brand has it, so
/// conversations point at a brand that exists.
pub const DEFAULT_BRAND_ID: &str = "5cb3a1b7c9e77c0013e5f100";

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
const MINUTE_MS: i64 = 60_000;

/// Random (createdAt, updatedAt) in the data range, updated at or after created.
fn times(rng: &mut Rng) -> (i64, i64) {
    let created = DATA_END_MS - TWO_YEARS_MS + rng.below((TWO_YEARS_MS - DAY_MS) as u64) as i64;
    let updated = created + rng.below((DATA_END_MS - created) as u64) as i64;
    (created, updated)
}

fn list_of(kind: &str, ids: &[String]) -> Value {
    Value::Array(
        ids.iter()
            .map(|id| json!({"type": kind, "id": id}))
            .collect(),
    )
}

/// Up to `max` distinct ids of `pool` (at least one when `min_one` and the pool has any).
fn several(rng: &mut Rng, pool: &[String], max: u64, min_one: bool) -> Vec<String> {
    if pool.is_empty() {
        return Vec::new();
    }
    let n = if min_one {
        1 + rng.below(max.max(1))
    } else {
        rng.below(max + 1)
    };
    let mut out: Vec<String> = (0..n).map(|_| rng.pick(pool).clone()).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What generators draw relationships from.
pub struct Refs<'a> {
    pub pools: &'a Pools,
    /// Users whose `userType` is `user` (agents).
    pub agents: &'a [String],
    /// Users whose `userType` is `machine`.
    pub machines: &'a [String],
}

/// One work session of `user` signed in at `signed_in`; `signed_out` `None` while still active,
/// last updated at `now`.
pub fn work_session(
    rng: &mut Rng,
    id: &str,
    user: &str,
    signed_in: i64,
    signed_out: Option<i64>,
    now: i64,
    refs: &Refs<'_>,
) -> Value {
    let (end, status) = match signed_out {
        Some(out) => (out, "offline"),
        None => (now, *rng.pick(&["available", "available", "busy", "away"])),
    };
    let span = (end - signed_in).max(1);
    let available = span * (50 + rng.below(45) as i64) / 100;
    let busy = (span - available) * rng.below(80) as i64 / 100;
    let away = span - available - busy;
    let updated = match signed_out {
        Some(out) => out + rng.below(60_000) as i64,
        None => end,
    };
    let total_capacity = 3 + rng.below(8);
    let remaining = rng.below(total_capacity + 1);
    let work_items = total_capacity - remaining;
    let handled = work_items + rng.below(25);
    let mut rels = json!({"user": rel("user", user)});
    if !refs.pools.teams.is_empty() {
        rels["team"] = rel("team", rng.pick(&refs.pools.teams).as_str());
    }
    rels["queues"] = json!({"data": list_of("queue", &several(rng, &refs.pools.queues, 3, true))});
    base(
        "work_session",
        id,
        "/v1/routing/work-sessions",
        json!({
            "signedInAt": iso(signed_in),
            "signedOutAt": signed_out.map(iso),
            "routable": signed_out.is_none() && status == "available",
            "statusType": status,
            "capacityStatus": if remaining == 0 { "atCapacity" } else { "underCapacity" },
            "totalCapacity": total_capacity,
            "capacityRemaining": remaining,
            "workItemCount": work_items,
            "handledItemCount": handled,
            "handledConversationCount": handled - rng.below(handled / 4 + 1),
            "totalAvailable": {"statusAt": end - rng.below(available.max(1) as u64) as i64, "time": available, "businessTime": available * 9 / 10},
            "totalTimeByStatus": {"available": available, "busy": busy, "away": away},
            "rev": 1 + rng.below(30),
            "createdAt": iso(signed_in),
            "updatedAt": iso(updated),
        }),
        rels,
    )
}

/// An SLA policy.
pub fn sla(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize) -> Value {
    const NAMES: &[&str] = &[
        "Standard",
        "Premium",
        "VIP 🌟",
        "Chat first response",
        "Email next reply",
        "Enterprise",
        "Escalations",
        "Weekend",
    ];
    let name = nth_name(NAMES, i, "SLA");
    base(
        "sla",
        id,
        "/v1/slas",
        json!({
            "name": name,
            "description": format!("First response and next reply targets for {} conversations", name.to_lowercase()),
            "enabled": i == 0 || rng.chance(0.8),
            "version": 1 + rng.below(4),
            "rev": 1 + rng.below(12),
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({}),
    )
}

/// A holiday of a schedule, in the year of `c`.
pub fn holiday(rng: &mut Rng, id: &str, c: i64, u: i64) -> Value {
    const DAYS: &[(&str, &str, u32)] = &[
        ("New Year's Day", "01-01", 1),
        ("Independence Day", "07-04", 1),
        ("Thanksgiving", "11-27", 2),
        ("Christmas", "12-24", 3),
        ("Bastille Day", "07-14", 1),
        ("Labour Day", "05-01", 1),
        ("Company offsite 🏕️", "09-15", 2),
        ("Yom Kippur", "10-02", 1),
    ];
    let (name, day, len) = *rng.pick(DAYS);
    let year = 2024 + rng.below(2);
    let start =
        chrono::NaiveDate::parse_from_str(&format!("{year}-{day}"), "%Y-%m-%d").unwrap_or_default();
    let end = start + chrono::Duration::days(i64::from(len) - 1);
    base(
        "holiday",
        id,
        HOLIDAYS_PATH,
        json!({
            "name": name,
            "startDate": start.format("%Y-%m-%d").to_string(),
            "endDate": end.format("%Y-%m-%d").to_string(),
            "enabled": rng.chance(0.9),
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({}),
    )
}

/// A business-hours schedule; `default` for exactly one.
pub fn schedule(
    rng: &mut Rng,
    id: &str,
    c: i64,
    u: i64,
    i: usize,
    default: bool,
    holidays: &[String],
) -> Value {
    const KINDS: &[(&str, &str)] = &[
        ("Business hours (US)", "America/New_York"),
        ("Business hours (EU)", "Europe/Paris"),
        ("24/7 support", "UTC"),
        ("APAC hours", "Asia/Tokyo"),
        ("שעות פעילות", "Asia/Jerusalem"),
    ];
    let (name, zone) = KINDS[i % KINDS.len()];
    let mut hours = serde_json::Map::new();
    for day in 0..7u32 {
        let value = if name.starts_with("24/7") {
            json!([[0, 1440]])
        } else if day == 0 || day == 6 {
            if rng.chance(0.3) {
                json!([[600, 960]])
            } else {
                Value::Null
            }
        } else if rng.chance(0.2) {
            json!([[480, 720], [780, 1080]])
        } else {
            let start = 480 + 30 * rng.below(4);
            json!([[start, start + 480]])
        };
        hours.insert(day.to_string(), value);
    }
    base(
        "schedule",
        id,
        "/v1/schedules",
        json!({
            "name": if i < KINDS.len() { name.to_string() } else { format!("{name} {}", i + 1) },
            "hours": hours, "timezone": zone, "default": default, "deleted": false,
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({"holidays": {"data": list_of("holiday", holidays)}}),
    )
}

/// A snooze option.
pub fn snooze(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize) -> Value {
    let (name, kind, value) = match i % 4 {
        0 => {
            let hours = *rng.pick(&[1u64, 2, 4, 8]);
            (
                format!("{hours} hours"),
                "relative",
                json!({"amount": hours, "unit": "hours"}),
            )
        }
        1 => {
            let days = 1 + rng.below(7);
            (
                format!("{days} days"),
                "relative",
                json!({"amount": days, "unit": "days"}),
            )
        }
        2 => {
            let until = *rng.pick(&["nextBusinessDay", "nextMonday", "endOfWeek"]);
            (format!("Until {until}"), "dynamic", json!({"until": until}))
        }
        _ => {
            let at = DATA_END_MS - rng.below(30) as i64 * DAY_MS;
            (
                format!("Until {}", &iso(at)[..10]),
                "absolute",
                json!({"at": iso(at)}),
            )
        }
    };
    base(
        "snooze",
        id,
        "/v1/snoozes",
        json!({
            "name": if i < 4 { name } else { format!("{name} ({})", i + 1) },
            "type": kind, "value": value, "enabled": i < 2 || rng.chance(0.8),
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({}),
    )
}

/// The `i`th of `names`, or `<prefix> <i + 1>` past their end.
fn nth_name(names: &[&str], i: usize, prefix: &str) -> String {
    names
        .get(i)
        .map_or_else(|| format!("{prefix} {}", i + 1), |n| (*n).to_string())
}

/// A brand; `default` for exactly one.
pub fn brand(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize, default: bool) -> Value {
    const NAMES: &[&str] = &[
        "Acme",
        "Acme Outlet",
        "Acme Pro",
        "Acme Kids",
        "Acmé Europe",
    ];
    let name = nth_name(NAMES, i, "Acme");
    base(
        "brand",
        id,
        "/v1/brands",
        json!({
            "name": name, "default": default,
            "color": format!("#{:06x}", rng.below(0xFF_FFFF)),
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({}),
    )
}

/// A shortcut (a canned reply), optionally in the folder of `parent`.
pub fn shortcut(
    rng: &mut Rng,
    id: &str,
    c: i64,
    u: i64,
    i: usize,
    parent: Option<&str>,
    refs: &Refs<'_>,
) -> Value {
    const TOPICS: &[(&str, &str)] = &[
        (
            "Refund policy",
            "Hi {{customer.firstName}}, refunds are issued within 5 business days.",
        ),
        (
            "Shipping delay",
            "Sorry for the wait 📦 your order ships tomorrow.",
        ),
        (
            "Password reset",
            "You can reset your password at https://shop.example/reset.",
        ),
        ("Thanks", "Thank you for reaching out! 😊"),
        ("Warranty", "Your item is covered for 24 months."),
        ("Escalation", "I've escalated this to our specialist team."),
        ("Arabic greeting", "مرحبا، كيف يمكننا المساعدة؟"),
        ("Hebrew greeting", "שלום, איך נוכל לעזור?"),
    ];
    let (topic, text) = TOPICS[i % TOPICS.len()];
    let mut payload = json!({"tags": several(rng, &refs.pools.tags, 2, false)});
    if rng.chance(0.4) {
        payload["status"] = json!(*rng.pick(&["done", "snoozed", "open"]));
    }
    if rng.chance(0.3) && !refs.pools.teams.is_empty() {
        payload["assignedTeam"] = json!(rng.pick(&refs.pools.teams));
    }
    let mut rels = json!({
        "accessTeams": {"data": list_of("team", &several(rng, &refs.pools.teams, 3, false))},
    });
    if let Some(p) = parent {
        rels["parent"] = json!({"data": {"type": "shortcut", "id": p}, "links": {"self": format!("/v1/shortcuts/{p}")}});
    }
    if !refs.pools.users.is_empty() {
        rels["createdBy"] = rel("user", rng.pick(&refs.pools.users).as_str());
    }
    base(
        "shortcut",
        id,
        "/v1/shortcuts",
        json!({
            "name": format!("{topic} {}", i / TOPICS.len() + 1),
            "draft": {"text": text},
            "payload": payload,
            "isPrivate": rng.chance(0.15),
            "rev": 1 + rng.below(6),
            "deleted": false,
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        rels,
    )
}

/// A satisfaction (CSAT) form.
pub fn satisfaction_form(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize) -> Value {
    let channel = if i.is_multiple_of(2) { "email" } else { "chat" };
    base(
        "satisfaction",
        id,
        "/v1/satisfaction",
        json!({
            "name": format!("CSAT {channel} {}", i / 2 + 1),
            "formType": "csat",
            "enabled": i < 2 || rng.chance(0.6),
            "channel": channel,
            "scale": {"type": "5-point", "options": 5},
            "questions": [
                {"id": "rating", "type": "rating", "prompt": "How would you rate the support you received?", "required": true},
                {"id": "comment", "type": "text", "prompt": "Anything we could do better? ✍️", "required": false},
            ],
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({}),
    )
}

/// The routing settings of `team`.
pub fn team_routing_settings(
    rng: &mut Rng,
    id: &str,
    c: i64,
    u: i64,
    team: &str,
    refs: &Refs<'_>,
) -> Value {
    base(
        "team_routing_settings",
        id,
        "/v1/routing/settings",
        json!({
            "enabled": rng.chance(0.8),
            "capacity": 1 + rng.below(10),
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({
            "team": rel("team", team),
            "queues": {"data": list_of("queue", &several(rng, &refs.pools.queues, 10, false))},
        }),
    )
}

/// An AI assistant (automation) acting as a machine user.
pub fn assistant(rng: &mut Rng, id: &str, c: i64, u: i64, i: usize, refs: &Refs<'_>) -> Value {
    const KINDS: &[(&str, &str, &str)] = &[
        (
            "Order status bot",
            "customer-assist",
            "Answers where-is-my-order questions",
        ),
        (
            "Triage",
            "classification",
            "Tags and routes new conversations",
        ),
        (
            "Refund helper",
            "agent-assist",
            "Drafts refund replies for agents",
        ),
        (
            "Summaries",
            "summarization",
            "Summarises long conversations ✨",
        ),
        ("Spam filter", "classification", "Marks spam"),
        ("Returns bot", "customer-assist", "Starts return requests"),
    ];
    let (name, kind, description) = KINDS[i % KINDS.len()];
    let pool = if refs.machines.is_empty() {
        &refs.pools.users
    } else {
        refs.machines
    };
    let machine = if pool.is_empty() {
        Value::Null
    } else {
        json!(rng.pick(pool))
    };
    base(
        "ai_automation",
        id,
        "/v1/ai/automations",
        json!({
            "name": if i < KINDS.len() { name.to_string() } else { format!("{name} {}", i + 1) },
            "description": description, "type": kind, "machineUserId": machine,
            "createdAt": iso(c), "updatedAt": iso(u),
        }),
        json!({}),
    )
}

/// Adds a generated record to `key`, indexed at once.
fn put(tables: &mut BTreeMap<String, Table>, key: &str, id: &str, value: &Value) {
    tables
        .entry(key.to_string())
        .or_default()
        .add_indexed(id.to_string(), Rec::from_value(value));
}

/// Agents and machine users, read from the generated users.
pub fn user_kinds(tables: &BTreeMap<String, Table>) -> (Vec<String>, Vec<String>) {
    let (mut agents, mut machines) = (Vec::new(), Vec::new());
    if let Some(t) = tables.get("users") {
        for id in &t.order {
            let Some(rec) = t.records.get(id) else {
                continue;
            };
            if rec.value()["attributes"]["userType"] == "machine" {
                machines.push(id.clone());
            } else {
                agents.push(id.clone());
            }
        }
    }
    (agents, machines)
}

/// Generates the nine resources and holidays into `tables`, then gives conversations their `sla`
/// and `satisfactionLevel`. Uses only `rng` (never the original generator's).
pub fn generate(rng: &mut Rng, scale: Scale, tables: &mut BTreeMap<String, Table>, pools: &Pools) {
    let n = counts(scale);
    let (agents, machines) = user_kinds(tables);
    let refs = Refs {
        pools,
        agents: &agents,
        machines: &machines,
    };
    for r in &RESOURCES {
        tables.entry(r.key.to_string()).or_default();
    }
    tables.entry(HOLIDAYS.to_string()).or_default();
    work_sessions(rng, n.work_sessions, tables, &refs);
    let mut slas = Vec::new();
    for i in 0..n.slas {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        let v = sla(rng, &id, c, u, i);
        slas.push((
            id.clone(),
            v["attributes"]["name"].clone(),
            v["attributes"]["version"].as_u64().unwrap_or(1),
        ));
        put(tables, "slas", &id, &v);
    }
    for i in 0..n.schedules {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        let mut holidays = Vec::new();
        for _ in 0..2 + rng.below(5) {
            let hc = c + rng.below((u - c).max(1) as u64) as i64;
            let hid = rng.object_id(hc / 1000);
            let v = holiday(rng, &hid, hc, u);
            put(tables, HOLIDAYS, &hid, &v);
            holidays.push(hid);
        }
        let v = schedule(rng, &id, c, u, i, i == 0, &holidays);
        put(tables, "schedules", &id, &v);
    }
    for i in 0..n.snoozes {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        put(tables, "snoozes", &id, &snooze(rng, &id, c, u, i));
    }
    for i in 0..n.brands {
        let (c, u) = times(rng);
        let id = if i == 0 {
            DEFAULT_BRAND_ID.to_string()
        } else {
            rng.object_id(c / 1000)
        };
        put(tables, "brands", &id, &brand(rng, &id, c, u, i, i == 0));
    }
    let mut folders: Vec<String> = Vec::new();
    for i in 0..n.shortcuts {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        let parent = if !folders.is_empty() && rng.chance(0.3) {
            Some(rng.pick(&folders).clone())
        } else {
            None
        };
        let v = shortcut(rng, &id, c, u, i, parent.as_deref(), &refs);
        put(tables, "shortcuts", &id, &v);
        if i.is_multiple_of(10) {
            folders.push(id);
        }
    }
    let mut forms = Vec::new();
    for i in 0..n.satisfaction_forms {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        put(
            tables,
            "satisfaction_forms",
            &id,
            &satisfaction_form(rng, &id, c, u, i),
        );
        forms.push(id);
    }
    for team in &pools.teams {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        let v = team_routing_settings(rng, &id, c, u, team, &refs);
        put(tables, "team_routing_settings", &id, &v);
    }
    for i in 0..n.assistants {
        let (c, u) = times(rng);
        let id = rng.object_id(c / 1000);
        put(
            tables,
            "assistants",
            &id,
            &assistant(rng, &id, c, u, i, &refs),
        );
    }
    if let Some(table) = tables.get_mut("conversations") {
        conversation_extras(rng, table, &slas, &forms);
    }
}

/// About one session per agent per working day over the most recent working days, enough of them
/// for `target`; the last day's sessions are partly still signed in.
fn work_sessions(
    rng: &mut Rng,
    target: usize,
    tables: &mut BTreeMap<String, Table>,
    refs: &Refs<'_>,
) {
    if refs.agents.is_empty() || target == 0 {
        return;
    }
    let per_day = refs.agents.len() as f64 * 0.9;
    let days = ((target as f64 / per_day).ceil() as i64).max(1);
    // Working days (Monday–Friday) back from the day before the data's end, oldest first.
    let mut starts = Vec::new();
    let mut day = DATA_END_MS - DAY_MS;
    while (starts.len() as i64) < days && day > DATA_END_MS - TWO_YEARS_MS {
        let weekday = chrono::DateTime::from_timestamp_millis(day)
            .map(|t| chrono::Datelike::weekday(&t).num_days_from_monday())
            .unwrap_or(0);
        if weekday < 5 {
            starts.push(day);
        }
        day -= DAY_MS;
    }
    starts.reverse();
    let last = starts.last().copied();
    for start in starts {
        for agent in refs.agents {
            if !rng.chance(0.9) {
                continue;
            }
            let signed_in = start + 7 * HOUR_MS + rng.below(3 * HOUR_MS as u64) as i64;
            let active = Some(start) == last && rng.chance(0.25);
            let (signed_out, now) = if active {
                let now = signed_in + MINUTE_MS + rng.below(2 * HOUR_MS as u64) as i64;
                (None, now)
            } else {
                let out = signed_in + 4 * HOUR_MS + rng.below(5 * HOUR_MS as u64) as i64;
                (Some(out), out)
            };
            let id = rng.object_id(signed_in / 1000);
            let v = work_session(rng, &id, agent, signed_in, signed_out, now, refs);
            put(tables, "work_sessions", &id, &v);
        }
    }
}

fn ms_of(text: &Value) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.as_str()?)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// Gives ~70% of conversations an `sla` and ~40% a `satisfactionLevel`, leaving `updatedAt` (and
/// so the search index) as it was.
fn conversation_extras(
    rng: &mut Rng,
    table: &mut Table,
    slas: &[(String, Value, u64)],
    forms: &[String],
) {
    let ids = table.order.clone();
    for id in ids {
        let Some(rec) = table.records.get(&id) else {
            continue;
        };
        let mut value = rec.value();
        let attrs = &value["attributes"];
        let (Some(c), Some(u)) = (ms_of(&attrs["createdAt"]), ms_of(&attrs["updatedAt"])) else {
            continue;
        };
        let done = attrs["status"] == "done";
        let mut changed = false;
        if !slas.is_empty() && rng.chance(0.7) {
            value["attributes"]["sla"] = sla_of(rng, slas, c, u, done);
            changed = true;
        }
        if !forms.is_empty() && rng.chance(0.4) {
            value["attributes"]["satisfactionLevel"] = satisfaction_of(rng, forms, c, u);
            changed = true;
        }
        if changed {
            table.put(&id, Rec::from_value(&value), None);
        }
    }
}

fn sla_of(rng: &mut Rng, slas: &[(String, Value, u64)], c: i64, u: i64, done: bool) -> Value {
    let (sla_id, name, version) = rng.pick(slas);
    let end = DATA_END_MS - 1;
    let matched = (c + rng.below(60_000) as i64).min(u.max(c));
    let breach_at = (matched + HOUR_MS + rng.below(7 * HOUR_MS as u64) as i64).min(end);
    let status = if rng.chance(0.2) {
        "breached"
    } else if done {
        "achieved"
    } else {
        *rng.pick(&["active", "achieved"])
    };
    let breached = status == "breached";
    let satisfied = if breached || (status == "active" && rng.chance(0.5)) {
        Value::Null
    } else {
        json!(iso((matched
            + rng.below((breach_at - matched).max(1) as u64) as i64)
            .min(end)))
    };
    let breach = if breached {
        let metric = *rng.pick(&["firstResponse", "nextReply", "totalConversationOpenTime"]);
        json!({"metric": metric, "at": iso(breach_at)})
    } else {
        Value::Null
    };
    json!({
        "id": sla_id, "name": name, "version": version, "matchedAt": iso(matched),
        "status": status, "breached": breached, "breach": breach,
        "metrics": {"firstResponse": {"breachAt": iso(breach_at), "satisfiedAt": satisfied}},
    })
}

fn satisfaction_of(rng: &mut Rng, forms: &[String], c: i64, u: i64) -> Value {
    let form = rng.pick(forms);
    let sent = c + rng.below((u - c).max(1) as u64) as i64;
    let status = *rng.pick(&["rated", "rated", "offered", "unresponded"]);
    let rated = status == "rated";
    let (response, rating, score) = if rated {
        let rating = 1 + rng.below(5);
        (
            json!(rng.object_id(sent / 1000)),
            json!(rating),
            json!((rating - 1) * 25),
        )
    } else {
        (Value::Null, Value::Null, Value::Null)
    };
    json!({
        "form": form, "formResponse": response, "status": status, "rating": rating,
        "score": score, "sentAt": iso(sent), "channel": "email",
    })
}

/// A new record of `key` created at `ts` (after the data: mutations happen now), or `None` for a
/// table not generated here. Schedules and brands made this way are never the default.
pub fn make(
    key: &str,
    rng: &mut Rng,
    id: &str,
    ts: i64,
    i: usize,
    refs: &Refs<'_>,
) -> Option<Value> {
    Some(match key {
        "work_sessions" => {
            let pool = if refs.agents.is_empty() {
                &refs.pools.users
            } else {
                refs.agents
            };
            if pool.is_empty() {
                return None;
            }
            let user = rng.pick(pool).clone();
            work_session(rng, id, &user, ts, None, ts, refs)
        }
        "slas" => sla(rng, id, ts, ts, i),
        "schedules" => schedule(rng, id, ts, ts, i, false, &[]),
        "snoozes" => snooze(rng, id, ts, ts, i),
        "brands" => brand(rng, id, ts, ts, i, false),
        "shortcuts" => shortcut(rng, id, ts, ts, i, None, refs),
        "satisfaction_forms" => satisfaction_form(rng, id, ts, ts, i),
        "team_routing_settings" => {
            if refs.pools.teams.is_empty() {
                return None;
            }
            let team = rng.pick(&refs.pools.teams).clone();
            team_routing_settings(rng, id, ts, ts, &team, refs)
        }
        "assistants" => assistant(rng, id, ts, ts, i, refs),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::super::state::{ENTITIES, ORIGINAL, State};
    use super::super::{FakeOptions, FakeServer, Scale};
    use super::*;

    const KEY: &str = "test-key";

    fn small() -> State {
        State::generate(7, Scale::Small, Duration::ZERO)
    }

    fn texts(state: &State, key: &str) -> Vec<String> {
        let t = &state.tables[key];
        t.order
            .iter()
            .map(|id| t.records[id].text.to_string())
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_new_records() {
        let (a, b) = (small(), small());
        let c = State::generate(8, Scale::Small, Duration::ZERO);
        for key in ENTITIES[ORIGINAL..]
            .iter()
            .chain([&HOLIDAYS, &"conversations"])
        {
            assert_eq!(texts(&a, key), texts(&b, key), "{key}");
            assert!(!texts(&a, key).is_empty(), "{key}");
            assert_ne!(texts(&a, key), texts(&c, key), "{key}");
        }
    }

    #[test]
    fn counts_ids_types_and_times_are_plausible() {
        let state = small();
        let n = |k: &str| state.tables[k].records.len();
        assert!(
            (250..=330).contains(&n("work_sessions")),
            "{}",
            n("work_sessions")
        );
        assert_eq!(n("slas"), 3);
        assert_eq!(n("schedules"), 2);
        assert_eq!(n("snoozes"), 4);
        assert_eq!(n("brands"), 2);
        assert_eq!(n("shortcuts"), 20);
        assert_eq!(n("satisfaction_forms"), 2);
        assert_eq!(n("team_routing_settings"), n("teams"));
        assert_eq!(n("assistants"), 2);
        let lo = iso(DATA_END_MS - TWO_YEARS_MS);
        let hi = iso(DATA_END_MS);
        let kinds = [
            "work_session",
            "sla",
            "schedule",
            "snooze",
            "brand",
            "shortcut",
            "satisfaction",
            "team_routing_settings",
            "ai_automation",
        ];
        for (r, kind) in RESOURCES.iter().zip(kinds) {
            for v in state.records(r.key) {
                assert_eq!(v["type"], kind);
                let id = v["id"].as_str().unwrap();
                assert!(id.len() == 24 && id.chars().all(|c| c.is_ascii_hexdigit()));
                assert_eq!(v["links"]["self"], format!("{}/{id}", r.path));
                let (c, u) = (
                    v["attributes"]["createdAt"].as_str().unwrap(),
                    v["attributes"]["updatedAt"].as_str().unwrap(),
                );
                assert!(
                    lo.as_str() <= c && c <= u && u < hi.as_str(),
                    "{}: {c} {u}",
                    r.key
                );
            }
        }
        let mut active = 0;
        for v in state.records("work_sessions") {
            let a = &v["attributes"];
            let ms = |x: &Value| ms_of(x).unwrap();
            let end = match a["signedOutAt"].as_str() {
                Some(_) => {
                    assert!(ms(&a["updatedAt"]) >= ms(&a["signedOutAt"]));
                    ms(&a["signedOutAt"])
                }
                None => {
                    active += 1;
                    ms(&a["updatedAt"])
                }
            };
            assert_eq!(a["createdAt"], a["signedInAt"]);
            let time = a["totalAvailable"]["time"].as_i64().unwrap();
            assert!(time <= end - ms(&a["signedInAt"]));
            assert!(a["capacityRemaining"].as_u64() <= a["totalCapacity"].as_u64());
            assert!(
                state.tables["users"]
                    .records
                    .contains_key(v["relationships"]["user"]["data"]["id"].as_str().unwrap())
            );
        }
        assert!(active > 0);
        for v in state.records("team_routing_settings") {
            assert!(
                v["relationships"]["queues"]["data"]
                    .as_array()
                    .unwrap()
                    .len()
                    <= 10
            );
        }
    }

    #[test]
    fn exactly_one_schedule_and_one_brand_are_default() {
        let state = small();
        for key in ["schedules", "brands"] {
            let defaults = state
                .records(key)
                .iter()
                .filter(|v| v["attributes"]["default"] == true)
                .count();
            assert_eq!(defaults, 1, "{key}");
        }
        assert!(
            state.tables["brands"]
                .records
                .contains_key(DEFAULT_BRAND_ID)
        );
        for v in state.records("schedules") {
            let hs = v["relationships"]["holidays"]["data"]
                .as_array()
                .unwrap()
                .clone();
            assert!((2..=6).contains(&hs.len()));
            for h in hs {
                let h = &state.tables[HOLIDAYS].records[h["id"].as_str().unwrap()].value();
                assert_eq!(h["type"], "holiday");
                assert_eq!(h["attributes"]["startDate"].as_str().unwrap().len(), 10);
            }
        }
    }

    #[test]
    fn conversations_carry_slas_and_satisfaction_without_changing_updated_at() {
        let state = small();
        let convs = state.records("conversations");
        let slas: Vec<Value> = state.records("slas");
        let forms: Vec<Value> = state.records("satisfaction_forms");
        let with_sla = convs
            .iter()
            .filter(|c| c["attributes"]["sla"].is_object())
            .count();
        let with_csat = convs
            .iter()
            .filter(|c| c["attributes"]["satisfactionLevel"].is_object())
            .count();
        assert!((240..=320).contains(&with_sla), "{with_sla}");
        assert!((120..=200).contains(&with_csat), "{with_csat}");
        let table = &state.tables["conversations"];
        for c in &convs {
            let a = &c["attributes"];
            let id = c["id"].as_str().unwrap();
            assert_eq!(table.records[id].updated, a["updatedAt"].as_str().unwrap());
            let ix = table.records[id].indexed.as_ref().unwrap();
            assert_eq!(ix.text, table.records[id].text);
            if let Some(sla) = a["sla"].as_object() {
                let owner = slas.iter().find(|s| s["id"] == sla["id"]).unwrap();
                assert_eq!(owner["attributes"]["name"], sla["name"]);
                assert!(sla["matchedAt"].as_str() >= a["createdAt"].as_str());
                let breached = sla["status"] == "breached";
                assert_eq!(sla["breached"], breached);
                assert_eq!(sla["breach"].is_object(), breached);
            }
            if let Some(s) = a["satisfactionLevel"].as_object() {
                assert!(forms.iter().any(|f| f["id"] == s["form"]));
                let rated = s["status"] == "rated";
                for k in ["formResponse", "rating", "score"] {
                    assert_eq!(!s[k].is_null(), rated, "{k}");
                }
            }
        }
    }

    async fn server() -> FakeServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        FakeServer::start(listener, FakeOptions::new(7, Scale::Small, KEY))
            .await
            .unwrap()
    }

    async fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let client = reqwest::Client::new();
        let url = format!("{base}{path}");
        let req = match method {
            "GET" => client.get(url),
            _ => client.post(url),
        };
        let req = match body {
            Some(b) => req.json(&b),
            None => req,
        };
        let r = req.bearer_auth(KEY).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn lists_page_by_id_reads_and_included_holidays() {
        let fake = server().await;
        let base = fake.base_url();
        for r in &RESOURCES {
            let (status, page) = call(&base, "GET", &format!("{}?pageSize=1", r.path), None).await;
            assert_eq!(status, 200, "{}", r.path);
            let data = page["data"].as_array().unwrap();
            assert_eq!(data.len(), 1, "{}", r.path);
            assert_eq!(
                page["links"]["next"],
                format!("{}?page=2&pageSize=1", r.path)
            );
            let id = data[0]["id"].as_str().unwrap();
            let (status, one) = call(&base, "GET", &format!("{}/{id}", r.path), None).await;
            assert_eq!((status, &one["data"]), (200, &data[0]));
            let (status, _) = call(
                &base,
                "GET",
                &format!("{}/{}", r.path, "0".repeat(24)),
                None,
            )
            .await;
            assert_eq!(status, 404);
        }
        let (_, all) = call(&base, "GET", "/v1/slas?pageSize=500", None).await;
        assert_eq!(all["meta"]["pageSize"], 100);
        let (_, page) = call(
            &base,
            "GET",
            "/v1/schedules?include=holidays&pageSize=1",
            None,
        )
        .await;
        let wanted: Vec<&Value> = page["data"][0]["relationships"]["holidays"]["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["id"])
            .collect();
        let included: Vec<&Value> = page["included"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| &h["id"])
            .collect();
        assert_eq!(wanted, included);
        assert_eq!(
            page["links"]["next"],
            "/v1/schedules?page=2&pageSize=1&include=holidays"
        );
        let hid = included[0].as_str().unwrap();
        let (status, h) = call(&base, "GET", &format!("/v1/holidays/{hid}"), None).await;
        assert_eq!((status, &h["data"]["type"]), (200, &json!("holiday")));
        let (_, plain) = call(&base, "GET", "/v1/schedules", None).await;
        assert!(plain.get("included").is_none());
        let stats = fake.handle().stats();
        assert!(stats.list_requests >= 11, "{stats:?}");
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn work_sessions_are_searchable() {
        let fake = server().await;
        let base = fake.base_url();
        let body = json!({"queryContext": "work_session", "and": [{"work_session_updated_at": {"gte": "2025-01-01"}}], "sort": [{"work_session_updated_at": "asc"}]});
        let (status, page) = call(
            &base,
            "POST",
            "/v1/customers/search?pageSize=500",
            Some(body),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(
            page["meta"]["total"].as_u64().unwrap() as usize,
            fake.handle().count("work_sessions")
        );
        fake.shutdown().await;
    }

    #[tokio::test]
    async fn switches_answer_errors_until_cleared() {
        let fake = server().await;
        let base = fake.base_url();
        let ws_search = json!({"queryContext": "work_session"});
        let (status, set) = call(
            &base,
            "POST",
            "/_fake/resources",
            Some(json!({"work_sessions": 403, "slas": 404, "schedules": 400})),
        )
        .await;
        assert_eq!(
            (status, &set),
            (
                200,
                &json!({"work_sessions": 403, "slas": 404, "schedules": 400})
            )
        );
        let (status, body) = call(&base, "GET", "/v1/routing/work-sessions", None).await;
        assert_eq!(
            (status, &body),
            (
                403,
                &json!({"errors": [{"status": "403", "code": "forbidden", "title": "Forbidden"}]})
            )
        );
        let id = fake.handle().records("slas")[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            call(&base, "GET", &format!("/v1/slas/{id}"), None).await.0,
            404
        );
        assert_eq!(call(&base, "GET", "/v1/schedules", None).await.0, 400);
        let hid = fake.handle().records("holidays")[0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            call(&base, "GET", &format!("/v1/holidays/{hid}"), None)
                .await
                .0,
            400
        );
        assert_eq!(
            call(
                &base,
                "POST",
                "/v1/customers/search",
                Some(ws_search.clone())
            )
            .await
            .0,
            403
        );
        assert_eq!(call(&base, "GET", "/v1/brands", None).await.0, 200);
        let (_, cleared) = call(
            &base,
            "POST",
            "/_fake/resources",
            Some(json!({"work_sessions": null, "slas": null, "schedules": null})),
        )
        .await;
        assert_eq!(cleared, json!({}));
        for path in ["/v1/routing/work-sessions", "/v1/slas", "/v1/schedules"] {
            assert_eq!(call(&base, "GET", path, None).await.0, 200, "{path}");
        }
        assert_eq!(
            call(
                &base,
                "POST",
                "/v1/customers/search",
                Some(ws_search.clone())
            )
            .await
            .0,
            200
        );

        let (_, refused) = call(
            &base,
            "POST",
            "/_fake/search-contexts",
            Some(json!({"refuse": ["work_session"]})),
        )
        .await;
        assert_eq!(refused, json!({"refuse": ["work_session"]}));
        let (status, body) = call(
            &base,
            "POST",
            "/v1/customers/search",
            Some(ws_search.clone()),
        )
        .await;
        assert_eq!(status, 400);
        assert!(
            body["errors"][0]["title"]
                .as_str()
                .unwrap()
                .contains("not supported"),
            "{body}"
        );
        assert_eq!(
            call(
                &base,
                "POST",
                "/v1/customers/search",
                Some(json!({"queryContext": "customer"}))
            )
            .await
            .0,
            200
        );
        assert_eq!(
            call(&base, "GET", "/_fake/search-contexts", None).await.1,
            refused
        );
        call(
            &base,
            "POST",
            "/_fake/search-contexts",
            Some(json!({"refuse": []})),
        )
        .await;
        assert_eq!(
            call(&base, "POST", "/v1/customers/search", Some(ws_search))
                .await
                .0,
            200
        );

        let h = fake.handle();
        h.set_resource_answer("assistants", Some(403));
        assert_eq!(call(&base, "GET", "/v1/ai/automations", None).await.0, 403);
        h.set_resource_answer("assistants", None);
        assert_eq!(call(&base, "GET", "/v1/ai/automations", None).await.0, 200);
        h.refuse_search_contexts(vec!["work_session".into()]);
        assert_eq!(
            h.refused_search_contexts(),
            vec!["work_session".to_string()]
        );
        fake.shutdown().await;
    }
}
