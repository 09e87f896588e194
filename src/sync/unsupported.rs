//! Deciding that an org or key does not offer an optional entity (the coverage entities: work
//! sessions, SLAs, schedules…), and the reason `status` shows. Kustomer answers such a resource's
//! first request with 404 (the org lacks the feature or the API), 403 (the key lacks the role) or
//! 400 (the request is refused for this org); any of these on the first page, before a record was
//! read, marks the entity unsupported instead of failing the run. Later pages, 5xx, 429 and 401 stay
//! ordinary failures: they say nothing about whether the org offers the resource.

use super::SyncError;
use crate::entity::Entity;
use crate::kustomer::ApiError;

/// Longest piece of Kustomer's own message kept in a reason (it is untrusted text).
const MAX_MESSAGE_CHARS: usize = 200;

/// Why `entity` is unsupported, when `error` (of a pass that read nothing yet) says so; `None` for
/// required entities and for any other error.
pub(super) fn reason(entity: &Entity, error: &SyncError) -> Option<String> {
    if !entity.optional {
        return None;
    }
    let SyncError::Api {
        page: None | Some(1),
        source,
        ..
    } = error
    else {
        return None;
    };
    let path = entity.list_path;
    let again = "`sync --full` (or the daemon's next full refresh) checks again";
    match source {
        ApiError::NotFound { .. } => Some(format!(
            "Kustomer answered 404 for {path}: this org does not offer it (a feature not enabled for the org, or not in its plan); {again}"
        )),
        ApiError::Forbidden { message, .. } => Some(format!(
            "Kustomer answered 403 for {path} ({}): the API key lacks the role {}; grant it to the key in Kustomer (Settings › Security › API keys), then {again}",
            bounded(message),
            entity.role
        )),
        ApiError::Rejected {
            status: 400,
            message,
            ..
        } => Some(format!(
            "Kustomer refused {path} with 400 ({}): this org does not accept the request; {again}",
            bounded(message)
        )),
        _ => None,
    }
}

/// Whether a search probe's `error` means "read the full list instead" for an optional entity: the
/// search context is refused (400), unknown (404) or not allowed (403), which may still leave the
/// list readable. The list's own answer then decides whether the entity is unsupported.
pub(super) fn probe_falls_back(entity: &Entity, error: &ApiError) -> bool {
    entity.optional
        && matches!(
            error,
            ApiError::NotFound { .. } | ApiError::Forbidden { .. }
        )
}

/// `message` cut to [`MAX_MESSAGE_CHARS`] characters, control characters replaced.
fn bounded(message: &str) -> String {
    message
        .chars()
        .take(MAX_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::by_name;

    fn api(page: Option<u32>, source: ApiError) -> SyncError {
        SyncError::Api {
            entity: "x".into(),
            page,
            source,
        }
    }

    #[test]
    fn first_page_404_403_400_of_optional_entities_only() {
        let slas = by_name("slas").unwrap();
        let not_found = || ApiError::NotFound {
            path: "/v1/slas".into(),
        };
        let why = reason(slas, &api(Some(1), not_found())).unwrap();
        assert!(why.contains("404") && why.contains("/v1/slas"), "{why}");
        let forbidden = ApiError::Forbidden {
            path: "/v1/slas".into(),
            message: "no\nrole".into(),
        };
        let why = reason(slas, &api(Some(1), forbidden)).unwrap();
        assert!(why.contains("org.permission.sla.read"), "{why}");
        assert!(why.contains("no role"), "{why}");
        let refused = ApiError::Rejected {
            status: 400,
            path: "/v1/slas".into(),
            message: "nope".into(),
        };
        assert!(reason(slas, &api(None, refused)).unwrap().contains("400"));
        // A later page, another status, or a required entity: an ordinary failure.
        assert_eq!(reason(slas, &api(Some(2), not_found())), None);
        let server = ApiError::Server {
            status: 503,
            path: "/v1/slas".into(),
            message: "down".into(),
        };
        assert_eq!(reason(slas, &api(Some(1), server)), None);
        let conflict = ApiError::Rejected {
            status: 409,
            path: "/v1/slas".into(),
            message: "x".into(),
        };
        assert_eq!(reason(slas, &api(Some(1), conflict)), None);
        assert_eq!(
            reason(by_name("customers").unwrap(), &api(Some(1), not_found())),
            None
        );
        assert_eq!(
            reason(slas, &SyncError::data("slas", "a tie group too large")),
            None
        );
    }

    #[test]
    fn long_messages_are_cut() {
        assert_eq!(bounded(&"é".repeat(500)).chars().count(), MAX_MESSAGE_CHARS);
    }
}
