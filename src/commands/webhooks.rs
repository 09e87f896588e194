//! `webhooks register | list | remove`: managing the Kustomer outbound webhook that feeds the
//! receiver (`[webhooks]`), over whichever transport `kustomer.transport` names. Owns checking a
//! hook's URL before any request, the token file (`webhooks.token_file`: one token per line, the
//! newest first, rewritten atomically with mode 0600) and what the three commands print, which is
//! never a token. Exit 0 done, 1 the request (or the token file) failed, 2 bad usage or config.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Secret, Settings, Transport};
use crate::exit::{EXIT_OK, EXIT_SYNC_FAILED, EXIT_USAGE};
use crate::kustomer::webhooks::{Webhook, WebhookError, Webhooks, events};

/// The default `--name`.
pub const DEFAULT_NAME: &str = "kustomer-mirror";

/// Kustomer's limit on a webhook's name.
const MAX_NAME: usize = 255;

/// The `webhooks` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum WebhooksCommand {
    /// Create an outbound webhook posting all 12 events to --url; its token goes to webhooks.token_file.
    ///
    /// The token (the key Kustomer signs events with) becomes the first line of
    /// webhooks.token_file, written atomically with mode 0600; the file's earlier tokens stay
    /// after it, so a hook registered before keeps verifying until it is removed. The token is
    /// never printed.
    Register(RegisterArgs),
    /// List the org's outbound webhooks: id, name, enabled, URL and number of events.
    List(ListArgs),
    /// Delete an outbound webhook, and remove its token from webhooks.token_file.
    Remove(RemoveArgs),
}

/// Arguments of `webhooks register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The receiver's public URL, ending in webhooks.path (default /webhooks/kustomer), e.g.
    /// https://mirror.example.com/webhooks/kustomer. It must be https; http is accepted only for
    /// a loopback host (127.0.0.1, ::1, localhost), for tests and the demo.
    #[arg(long, value_name = "URL")]
    pub url: String,
    /// The webhook's name in Kustomer (at most 255 characters).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_NAME)]
    pub name: String,
}

/// Arguments of `webhooks list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Print JSON (every attribute Kustomer serves but the token; header values redacted).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `webhooks remove`.
#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    /// The webhook's id, as `webhooks list` shows it.
    #[arg(value_name = "ID")]
    pub id: String,
}

/// A command's failure: the lines to print and the exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }

    fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_SYNC_FAILED,
            message: message.into(),
        }
    }
}

impl From<WebhookError> for Failure {
    fn from(e: WebhookError) -> Failure {
        Failure::failed(e.to_string())
    }
}

impl From<TokenFileError> for Failure {
    fn from(e: TokenFileError) -> Failure {
        Failure::failed(e.to_string())
    }
}

/// Runs `webhooks …`.
pub fn run(config: Option<&Path>, command: WebhooksCommand) -> ExitCode {
    let settings = match super::load_settings(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    crate::logging::init(&settings.log.level, settings.log.format);
    let outcome = match command {
        WebhooksCommand::Register(args) => register(&settings, &args),
        WebhooksCommand::List(args) => list(&settings, &args),
        WebhooksCommand::Remove(args) => remove(&settings, &args),
    };
    match outcome {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            for line in failure.message.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(failure.code)
        }
    }
}

/// Builds the client and runs `work` with the webhook calls over it.
fn with_webhooks<T>(
    settings: &Settings,
    work: impl AsyncFnOnce(Webhooks<'_>) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let client = super::client(settings).map_err(Failure::usage)?;
    let runtime = super::runtime().map_err(Failure::failed)?;
    let membrane = match settings.kustomer.transport {
        Transport::Direct => None,
        Transport::Membrane | Transport::MembraneCli => settings.membrane.connection_id.as_deref(),
    };
    runtime.block_on(work(Webhooks::new(&client, membrane)))
}

/// `webhooks register`.
fn register(settings: &Settings, args: &RegisterArgs) -> Result<(), Failure> {
    // Everything that can be checked is checked before the first request.
    let name = check_name(&args.name).map_err(Failure::usage)?;
    let url = check_url(&args.url).map_err(Failure::usage)?;
    if let Some(warning) = path_warning(&url, &settings.webhooks.path) {
        eprintln!("warning: {warning}");
    }
    let file = settings.webhooks.token_file.as_deref().ok_or_else(|| {
        Failure::usage(
            "webhooks register needs webhooks.token_file (or KUSTOMER_MIRROR__WEBHOOKS__TOKEN_FILE): the file the new webhook's token is written to, for the receiver to verify events with",
        )
    })?;
    // A token file that cannot be kept is the configuration's problem, found before any request.
    let earlier = TokenFile::new(file)
        .read_for_update()
        .map_err(|e| Failure::usage(e.to_string()))?;
    with_webhooks(settings, async |hooks| {
        let hook = hooks.create(name, url.as_str()).await.map_err(|e| {
            let mut message = e.to_string();
            if e.outcome_unknown() {
                message.push_str("\nthe webhook may have been created all the same: `kustomer-mirror webhooks list` shows it, `kustomer-mirror webhooks remove <ID>` deletes it");
            }
            Failure::failed(message)
        })?;
        let Some(token) = hook.token.clone() else {
            let undo = undo_create(&hooks, &hook.id).await;
            return Err(Failure::failed(format!(
                "Kustomer created webhook {} but served no token for it (neither in the create answer nor from GET /v1/outbound-webhooks/{}), so the receiver could not verify its events; {undo}",
                hook.id, hook.id
            )));
        };
        let count = match TokenFile::new(file).write_first(&token, &earlier) {
            Ok(count) => count,
            Err(e) => {
                let undo = undo_create(&hooks, &hook.id).await;
                return Err(Failure::failed(format!(
                    "created webhook {} but {e}; {undo}",
                    hook.id
                )));
            }
        };
        print_registered(&hook, file, count);
        Ok(())
    })
}

/// Deletes a hook just created whose token could not be kept; says what became of it.
async fn undo_create(hooks: &Webhooks<'_>, id: &str) -> String {
    match hooks.delete(id).await {
        Ok(()) => "it was deleted again (nothing changed in Kustomer)".to_string(),
        Err(e) => format!(
            "deleting it again failed too ({e}): delete it with `kustomer-mirror webhooks remove {id}`"
        ),
    }
}

fn print_registered(hook: &Webhook, file: &Path, count: usize) {
    println!("registered webhook {}", hook.id);
    println!("  name:   {}", hook.name);
    println!("  url:    {}", shown_url(&hook.url));
    println!(
        "  events: {} ({})",
        hook.events.join(", "),
        hook.events.len()
    );
    if count > 1 {
        println!(
            "its token was written to {} (line 1; the {} earlier token{} after it keep verifying until their hooks are removed)",
            file.display(),
            count - 1,
            if count == 2 { "" } else { "s" }
        );
    } else {
        println!("its token was written to {}", file.display());
    }
    if hook.events.len() != events().len() {
        eprintln!(
            "warning: Kustomer subscribed the webhook to {} of the {} events asked for",
            hook.events.len(),
            events().len()
        );
    }
}

/// `webhooks list`.
fn list(settings: &Settings, args: &ListArgs) -> Result<(), Failure> {
    let hooks = with_webhooks(settings, async |hooks| Ok(hooks.list().await?))?;
    if args.json {
        let shown: Vec<serde_json::Value> = hooks
            .into_iter()
            .map(|hook| {
                let mut object = serde_json::Map::new();
                object.insert("id".into(), hook.id.into());
                object.extend(hook.attributes);
                serde_json::Value::Object(object)
            })
            .collect();
        let text = serde_json::to_string_pretty(&shown)
            .map_err(|e| Failure::failed(format!("cannot print JSON: {e}")))?;
        println!("{text}");
        return Ok(());
    }
    if hooks.is_empty() {
        println!("no outbound webhooks");
        return Ok(());
    }
    let id_width = hooks.iter().map(|h| h.id.len()).max().unwrap_or(0).max(2);
    let name_width = hooks
        .iter()
        .map(|h| h.name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, 40);
    println!(
        "{:<id_width$}  {:<name_width$}  {:<7}  {:>6}  URL",
        "ID", "NAME", "ENABLED", "EVENTS"
    );
    for hook in &hooks {
        let enabled = match hook.enabled {
            Some(true) => "yes",
            Some(false) => "no",
            None => "?",
        };
        println!(
            "{:<id_width$}  {:<name_width$}  {:<7}  {:>6}  {}",
            hook.id,
            hook.name,
            enabled,
            hook.events.len(),
            shown_url(&hook.url)
        );
    }
    Ok(())
}

/// `webhooks remove`.
fn remove(settings: &Settings, args: &RemoveArgs) -> Result<(), Failure> {
    let id = args.id.trim();
    if id.is_empty() {
        return Err(Failure::usage(
            "the webhook id is empty; `kustomer-mirror webhooks list` shows the ids",
        ));
    }
    let file = settings.webhooks.token_file.as_deref();
    let hook = with_webhooks(settings, async |hooks| {
        // Its token, to take out of the token file once the hook is gone.
        let hook = match hooks.get(id).await {
            Ok(hook) => Some(hook),
            Err(e @ (WebhookError::NoWebhook { .. } | WebhookError::Denied { .. })) => {
                return Err(e.into());
            }
            Err(e) => {
                eprintln!("warning: {e}; deleting it anyway (its token stays in the token file)");
                None
            }
        };
        hooks.delete(id).await?;
        Ok(hook)
    })?;
    match &hook {
        Some(hook) => println!(
            "removed webhook {} ({}, {})",
            hook.id,
            hook.name,
            shown_url(&hook.url)
        ),
        None => println!("removed webhook {id}"),
    }
    let token = hook.and_then(|h| h.token);
    match (file, token) {
        (None, _) => println!("webhooks.token_file is not set: no token file to update"),
        (Some(file), None) => println!(
            "Kustomer did not serve the webhook's token, so {} was left as it is",
            file.display()
        ),
        (Some(file), Some(token)) => {
            if TokenFile::new(file).remove(&token)? {
                println!("removed its token from {}", file.display());
            } else {
                println!("its token was not in {}", file.display());
            }
        }
    }
    Ok(())
}

/// The name, trimmed; empty, too long or with control characters is bad usage.
fn check_name(name: &str) -> Result<&str, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("--name is empty".to_string());
    }
    if name.chars().count() > MAX_NAME {
        return Err(format!(
            "--name is longer than Kustomer's {MAX_NAME} characters"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("--name contains control characters".to_string());
    }
    Ok(name)
}

/// Checks `--url`: an absolute https URL (http only on a loopback host), without credentials.
fn check_url(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| format!("--url {text:?} is not a URL ({e}); give e.g. https://mirror.example.com/webhooks/kustomer"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("--url must not carry a user name or password: Kustomer would show them to anyone who can list webhooks, and the receiver authenticates events by their signature".to_string());
    }
    let host = url.host();
    let loopback = match &host {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    match url.scheme() {
        "https" if host.is_some() => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(format!(
            "--url must be https (Kustomer posts events only to https URLs); http is accepted only for a loopback host (127.0.0.1, ::1, localhost), for tests and the demo, not {}",
            url.host_str().unwrap_or_default()
        )),
        _ => Err(format!(
            "--url must be an https URL such as https://mirror.example.com/webhooks/kustomer, not {:?}",
            url.scheme()
        )),
    }
}

/// A warning when the URL's path does not end with `webhooks.path`, where the receiver listens.
fn path_warning(url: &url::Url, path: &str) -> Option<String> {
    (!url.path().ends_with(path)).then(|| {
        format!(
            "the URL's path {} does not end with webhooks.path ({path}), the only path the receiver accepts events on; unless a proxy in front of it rewrites the path, change --url or webhooks.path",
            url.path()
        )
    })
}

/// A URL as printed: a password in it (set on a hook by someone else) shows redacted.
fn shown_url(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some(crate::config::REDACTED));
            url.to_string()
        }
        _ => text.to_string(),
    }
}

/// Why the token file could not be read or written. Never holds a token.
#[derive(Debug, thiserror::Error)]
enum TokenFileError {
    /// Reading the existing file failed.
    #[error("cannot read webhooks.token_file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// Writing the new file (a temporary beside it, then a rename) failed; the old one is intact.
    #[error("cannot write webhooks.token_file {} (the file is unchanged): {step}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Which step failed.
        step: &'static str,
        /// What failed.
        source: std::io::Error,
    },
}

/// `webhooks.token_file`: non-empty lines, one token each, the newest first.
struct TokenFile<'a> {
    path: &'a Path,
}

impl<'a> TokenFile<'a> {
    fn new(path: &'a Path) -> TokenFile<'a> {
        TokenFile { path }
    }

    /// The tokens in the file (none when it does not exist yet). Also checks that its directory
    /// exists, so that `register` fails before creating a hook whose token it could not keep.
    fn read_for_update(&self) -> Result<Vec<Secret>, TokenFileError> {
        let dir = self.directory();
        if !dir.is_dir() {
            return Err(TokenFileError::Read {
                path: self.path.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("its directory {} does not exist", dir.display()),
                ),
            });
        }
        self.read()
    }

    fn read(&self) -> Result<Vec<Secret>, TokenFileError> {
        match std::fs::read_to_string(self.path) {
            Ok(text) => Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Secret::new)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(source) => Err(TokenFileError::Read {
                path: self.path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes `token` as the first line, then `earlier` (without `token` again); returns the
    /// number of lines.
    fn write_first(&self, token: &Secret, earlier: &[Secret]) -> Result<usize, TokenFileError> {
        let mut lines = vec![token.clone()];
        lines.extend(earlier.iter().filter(|t| *t != token).cloned());
        self.replace(&lines)?;
        Ok(lines.len())
    }

    /// Takes every line equal to `token` out; false when there was none (the file is untouched).
    fn remove(&self, token: &Secret) -> Result<bool, TokenFileError> {
        let lines = self.read()?;
        let kept: Vec<Secret> = lines.iter().filter(|t| *t != token).cloned().collect();
        if kept.len() == lines.len() {
            return Ok(false);
        }
        self.replace(&kept)?;
        Ok(true)
    }

    /// The directory the file is in (`.` for a bare file name).
    fn directory(&self) -> PathBuf {
        match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }

    /// Replaces the file with `lines` atomically: a temporary file in the same directory, created
    /// with mode 0600 (and the old file's owner, when we may), written and synced, then renamed
    /// over the file; a reader sees the old file or the new one, never a part. A symbolic link is
    /// followed, so the link stays and its target is replaced.
    fn replace(&self, lines: &[Secret]) -> Result<(), TokenFileError> {
        let target = match std::fs::symlink_metadata(self.path) {
            Ok(m) if m.file_type().is_symlink() => {
                std::fs::canonicalize(self.path).map_err(|source| TokenFileError::Write {
                    path: self.path.to_path_buf(),
                    step: "following its symbolic link",
                    source,
                })?
            }
            _ => self.path.to_path_buf(),
        };
        let owner = std::fs::metadata(&target).ok().map(|m| (m.uid(), m.gid()));
        let dir = TokenFile::new(&target).directory();
        let file_name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "tokens".to_string());
        let temp = dir.join(format!(
            ".{file_name}.{}.{:08x}.tmp",
            std::process::id(),
            fastrand::u32(..)
        ));
        let error = |step: &'static str| {
            let path = self.path.to_path_buf();
            move |source: std::io::Error| TokenFileError::Write { path, step, source }
        };
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(error("creating a temporary file beside it"))?;
            // The umask can only take bits away; set exactly 0600 all the same.
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(error("setting mode 0600"))?;
            if let Some((uid, gid)) = owner
                && let Err(e) = std::os::unix::fs::fchown(&file, Some(uid), Some(gid))
            {
                tracing::debug!(error = %e, "cannot keep the token file's owner");
            }
            let mut text = String::new();
            for line in lines {
                text.push_str(line.expose());
                text.push('\n');
            }
            file.write_all(text.as_bytes())
                .map_err(error("writing the temporary file"))?;
            file.sync_all()
                .map_err(error("syncing the temporary file"))?;
            std::fs::rename(&temp, &target).map_err(error("renaming the temporary file over it"))
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written?;
        // The rename is durable once the directory is synced; the file is in place either way.
        if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot sync the token file's directory");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_except_on_loopback() {
        assert!(check_url("https://mirror.example.com/webhooks/kustomer").is_ok());
        assert!(check_url("http://127.0.0.1:8089/webhooks/kustomer").is_ok());
        assert!(check_url("http://[::1]:8089/webhooks/kustomer").is_ok());
        assert!(check_url("http://localhost/webhooks/kustomer").is_ok());
        assert!(check_url("http://mirror.example.com/webhooks/kustomer").is_err());
        assert!(check_url("http://10.0.0.1/webhooks/kustomer").is_err());
        assert!(check_url("ftp://mirror.example.com/x").is_err());
        assert!(check_url("not a url").is_err());
        assert!(check_url("https://user:pw@mirror.example.com/webhooks/kustomer").is_err());
    }

    #[test]
    fn a_path_other_than_webhooks_path_warns() {
        let ok = check_url("https://h/prefix/webhooks/kustomer").expect("valid");
        assert!(path_warning(&ok, "/webhooks/kustomer").is_none());
        let other = check_url("https://h/hooks").expect("valid");
        assert!(path_warning(&other, "/webhooks/kustomer").is_some());
    }

    #[test]
    fn the_token_file_keeps_earlier_tokens_after_the_new_one_with_mode_0600() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tokens");
        let file = TokenFile::new(&path);
        let first = Secret::new("t1");
        assert_eq!(file.write_first(&first, &[]).expect("written"), 1);
        let second = Secret::new("t2");
        let earlier = file.read_for_update().expect("read");
        assert_eq!(file.write_first(&second, &earlier).expect("written"), 2);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read back"),
            "t2\nt1\n"
        );
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(file.remove(&first).expect("removed"));
        assert!(!file.remove(&first).expect("nothing to remove"));
        assert_eq!(std::fs::read_to_string(&path).expect("read back"), "t2\n");
        // Nothing but the file is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).expect("listed").count(), 1);
    }

    #[test]
    fn a_missing_directory_is_found_before_any_request() {
        let path = Path::new("/nonexistent-dir-of-kustomer-mirror/tokens");
        assert!(TokenFile::new(path).read_for_update().is_err());
    }
}
