//! The names the page and its readers agree on: element ids of `web/index.html`, the `<template>`s
//! the page clones, and the `data-*` attributes it writes for styles and tests. The page code
//! and the end-to-end tests (`tests/tests/page.rs`) both take them from here, and a test checks
//! that every id and template exists in `index.html`, so a rename cannot break one side silently.

/// Element ids in `web/index.html`.
pub mod id {
    /// The GPU check's headline (`data-state`: pending, ok, cpu, error).
    pub const STATUS: &str = "status";
    pub const ADAPTER: &str = "adapter";
    pub const DETAIL: &str = "detail";
    /// The fused-kernel check (`data-state`: pending, ok, error, skipped).
    pub const FUSED: &str = "fused";
    pub const NOTE: &str = "note";
    /// The swarm connection (`data-state`, `data-peer-id`, `data-relay`).
    pub const NET: &str = "net";
    /// Swarm counters (`data-peers`, `data-sent-total`, `data-received-total`).
    pub const NET_STATS: &str = "net-stats";
    /// Wallet discovery and connection (`data-state`, `data-address`, `data-chain`).
    pub const WALLET: &str = "wallet";
    /// One button per discovered wallet (from [`super::template::WALLET_BUTTON`]).
    pub const WALLETS: &str = "wallets";
    /// The tab's binding (`data-state`, `data-address`, `data-expires-at`).
    pub const BINDING: &str = "binding";
    pub const BIND: &str = "bind";
    pub const ROTATE_KEY: &str = "rotate-key";
    /// The tab's peer key (`data-peer-id`, `data-persistent`).
    pub const TAB_KEY: &str = "tab-key";
    /// Where learning starts from (`data-state`: pending, verified, none; `data-sha256`, and
    /// `data-version` when it is a swarm-model version).
    pub const BASE: &str = "base";
    /// How big a round this device gets and why (`data-questions`).
    pub const ROUND_SIZE: &str = "round-size";
    /// The relay's swarm model (`data-state`: pending, ready, none, error; `data-version`,
    /// `data-sha256`).
    pub const SWARM_MODEL: &str = "swarm-model";
    /// The swarm model's download link (the version's checkpoint URL).
    pub const SWARM_DOWNLOAD: &str = "swarm-download";
    /// This tab's updates to the swarm model (`data-state`: idle, sent, refused, error;
    /// `data-sent`, `data-accepted`).
    pub const SWARM_UPDATES: &str = "swarm-updates";
    /// Which backend training uses and why (`data-state`: webgpu, cpu).
    pub const BACKEND: &str = "backend";
    pub const TRAIN_WEBGPU: &str = "train-webgpu";
    pub const TRAIN_CPU: &str = "train-cpu";
    pub const TRAIN_STOP: &str = "train-stop";
    pub const TRAIN_SAVE: &str = "train-save";
    /// The learning run (`data-state`: idle, running, done, error; `data-round`, `data-reward`,
    /// `data-first-reward`, `data-policy-version`).
    pub const TRAIN_STATUS: &str = "train-status";
    pub const TRAIN_REWARDS: &str = "train-rewards";
    /// Accuracy per family: rows from [`super::template::FAMILY_ROW`].
    pub const TRAIN_FAMILIES: &str = "train-families";
    pub const TRAIN_SAVE_STATUS: &str = "train-save-status";
    /// The checkpoint download link (`data-bytes`, `data-sha256`).
    pub const TRAIN_DOWNLOAD: &str = "train-download";
    /// *Try the model*: the form, its question box, a button that fills in a suite question,
    /// and the answer (`data-state`: idle, asking, right, wrong, refused, error; `data-answer`,
    /// `data-family`, `data-correct`).
    pub const TRY_FORM: &str = "try-form";
    pub const TRY_QUESTION: &str = "try-question";
    pub const TRY_ASK: &str = "try-ask";
    pub const TRY_EXAMPLE: &str = "try-example";
    pub const TRY_ANSWER: &str = "try-answer";
    /// The consent gate (`web/main.js`): what contributing takes, the one *Contribute* action,
    /// the button that takes a remembered choice back, and what the page waits for
    /// (`data-state`: idle, loading, loaded, waiting, running, paused, error).
    pub const CONSENT: &str = "consent";
    pub const CONTRIBUTE: &str = "contribute-start";
    pub const CONSENT_FORGET: &str = "consent-forget";
    pub const CONSENT_STATE: &str = "consent-state";
    /// *Diagnostics*, and its button that loads the client for the checks without learning.
    pub const DIAGNOSTICS: &str = "diagnostics";
    pub const RUN_CHECKS: &str = "run-checks";

    /// Every id above, for the check against `index.html`.
    pub const ALL: &[&str] = &[
        STATUS,
        ADAPTER,
        DETAIL,
        FUSED,
        NOTE,
        NET,
        NET_STATS,
        WALLET,
        WALLETS,
        BINDING,
        BIND,
        ROTATE_KEY,
        TAB_KEY,
        BASE,
        SWARM_MODEL,
        SWARM_DOWNLOAD,
        SWARM_UPDATES,
        BACKEND,
        TRAIN_WEBGPU,
        TRAIN_CPU,
        TRAIN_STOP,
        TRAIN_SAVE,
        TRAIN_STATUS,
        TRAIN_REWARDS,
        TRAIN_FAMILIES,
        TRAIN_SAVE_STATUS,
        TRAIN_DOWNLOAD,
        TRY_FORM,
        TRY_QUESTION,
        TRY_ASK,
        TRY_EXAMPLE,
        TRY_ANSWER,
        CONSENT,
        CONTRIBUTE,
        CONSENT_FORGET,
        CONSENT_STATE,
        DIAGNOSTICS,
        RUN_CHECKS,
    ];
}

/// What the widget's frame (`web/embed.html`, read by `web/embed.js`) holds: its own controls, and
/// the page's elements the learning run needs (the rest are optional: a missing one is skipped).
pub mod embed {
    use super::id;

    pub const CONSENT: &str = "embed-consent";
    pub const BUDGET: &str = "embed-budget";
    pub const CONTRIBUTE: &str = "embed-contribute";
    pub const PAUSE: &str = "embed-pause";
    pub const FORGET: &str = "embed-forget";
    /// The frame's state (`data-state`: idle, running, paused, error), as the widget reports it.
    pub const STATE: &str = "embed-state";
    pub const DETAILS: &str = "embed-details";

    /// Every id `web/embed.html` must hold once.
    pub const ALL: &[&str] = &[
        CONSENT,
        BUDGET,
        CONTRIBUTE,
        PAUSE,
        FORGET,
        STATE,
        DETAILS,
        id::STATUS,
        id::BACKEND,
        id::BASE,
        id::NET,
        id::SWARM_MODEL,
        id::SWARM_UPDATES,
        id::TRAIN_STATUS,
        id::TRAIN_WEBGPU,
        id::TRAIN_CPU,
        id::TRAIN_STOP,
    ];
}

/// Ids of the `<template>` elements in `web/index.html` the page clones and fills.
pub mod template {
    /// A row of the accuracy table: `<tr>` with cells `.family`, `.tally`, `.accuracy`, `.level`.
    pub const FAMILY_ROW: &str = "family-row";
    /// A wallet's connect button: `<button>` with `img.icon` and `span.name`.
    pub const WALLET_BUTTON: &str = "wallet-button";

    pub const ALL: &[&str] = &[FAMILY_ROW, WALLET_BUTTON];
}

/// `data-*` attributes the page writes.
pub mod data {
    pub const STATE: &str = "data-state";
    pub const PEER_ID: &str = "data-peer-id";
    pub const RELAY: &str = "data-relay";
    pub const PEERS: &str = "data-peers";
    pub const SENT_TOTAL: &str = "data-sent-total";
    pub const RECEIVED_TOTAL: &str = "data-received-total";
    pub const ADDRESS: &str = "data-address";
    pub const CHAIN: &str = "data-chain";
    pub const EXPIRES_AT: &str = "data-expires-at";
    pub const PERSISTENT: &str = "data-persistent";
    /// A wallet button's EIP-6963 reverse-DNS name and session uuid.
    pub const RDNS: &str = "data-rdns";
    pub const UUID: &str = "data-uuid";
    pub const SHA256: &str = "data-sha256";
    pub const VERSION: &str = "data-version";
    pub const SENT: &str = "data-sent";
    pub const ACCEPTED: &str = "data-accepted";
    pub const ROUND: &str = "data-round";
    pub const REWARD: &str = "data-reward";
    pub const FIRST_REWARD: &str = "data-first-reward";
    pub const POLICY_VERSION: &str = "data-policy-version";
    /// Questions a round asks on this device (`#round-size`).
    pub const QUESTIONS: &str = "data-questions";
    /// The run's pacing so far (`#train-status`): milliseconds computing, and wall time since its
    /// first round began; their ratio is the duty cycle the budget holds.
    pub const BUSY_MS: &str = "data-busy-ms";
    pub const WALL_MS: &str = "data-wall-ms";
    /// A family row's family and accuracy (0–1).
    pub const FAMILY: &str = "data-family";
    pub const ACCURACY: &str = "data-accuracy";
    pub const BYTES: &str = "data-bytes";
    /// *Try the model*'s answer and whether it is right (`true`/`false`).
    pub const ANSWER: &str = "data-answer";
    pub const CORRECT: &str = "data-correct";
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    const INDEX_HTML: &str = include_str!("../../web/index.html");

    #[test]
    fn every_id_and_template_exists_in_index_html_once() {
        for name in id::ALL.iter().chain(template::ALL) {
            let needle = format!("id=\"{name}\"");
            assert_eq!(INDEX_HTML.matches(&needle).count(), 1, "web/index.html should have exactly one {needle}");
        }
        for name in template::ALL {
            assert!(INDEX_HTML.contains(&format!("<template id=\"{name}\">")), "#{name} should be a <template>");
        }
    }

    #[test]
    fn the_widget_frame_holds_its_controls_and_what_the_run_needs_once_each() {
        const EMBED_HTML: &str = include_str!("../../web/embed.html");
        const EMBED_JS: &str = include_str!("../../web/embed.js");
        for name in embed::ALL {
            let needle = format!("id=\"{name}\"");
            assert_eq!(EMBED_HTML.matches(&needle).count(), 1, "web/embed.html should have exactly one {needle}");
        }
        let read_by_the_script = [embed::BUDGET, embed::CONTRIBUTE, embed::PAUSE, embed::FORGET, embed::STATE];
        for name in read_by_the_script.iter().chain(&[embed::DETAILS, id::TRAIN_STATUS, id::TRAIN_STOP]) {
            assert!(EMBED_JS.contains(&format!("'{name}'")), "web/embed.js never reads #{name}");
        }
        // The backend the GPU check picks is read where both the frame and the page press it.
        let consent_js = include_str!("../../web/consent.js");
        for name in [id::BACKEND, id::TRAIN_WEBGPU, id::TRAIN_CPU] {
            assert!(consent_js.contains(&format!("'{name}'")), "web/consent.js never reads #{name}");
        }
        // Before consent the frame loads its own script only: the client is imported on the click.
        assert!(!EMBED_HTML.contains("main.js") && !EMBED_HTML.contains("pkg/"), "embed.html loads the client");
        assert!(!EMBED_JS.contains("pkg/") && EMBED_JS.contains("loadClient"), "embed.js loads the client itself");
    }

    #[test]
    fn the_page_and_the_frame_load_the_client_only_when_asked() {
        const CONSENT_JS: &str = include_str!("../../web/consent.js");
        const MAIN_JS: &str = include_str!("../../web/main.js");
        // One place imports the client, lazily; neither entry script imports it up front.
        assert!(CONSENT_JS.contains("await import('./pkg/tabswarm_client.js')"), "the client is not imported lazily");
        assert!(!MAIN_JS.contains("pkg/") && !INDEX_HTML.contains("pkg/"), "the page loads the client before a click");
        for name in
            [id::CONTRIBUTE, id::CONSENT_FORGET, id::CONSENT_STATE, id::RUN_CHECKS, id::TRAIN_CPU, id::TRAIN_WEBGPU]
        {
            assert!(MAIN_JS.contains(&format!("'{name}'")), "web/main.js never reads #{name}");
        }
        // Every button the page's code wires waits disabled in the markup until it is wired.
        for name in [id::CONTRIBUTE, id::RUN_CHECKS, id::TRAIN_CPU, id::TRAIN_WEBGPU, id::ROTATE_KEY, id::TRY_ASK] {
            let tag = INDEX_HTML.split(&format!("id=\"{name}\"")).nth(1).and_then(|rest| rest.split('>').next());
            assert!(
                tag.is_some_and(|attrs| attrs.contains(" disabled")),
                "#{name} is clickable before it does anything"
            );
        }
    }

    #[test]
    fn data_names_are_data_attributes() {
        let names = [
            data::STATE,
            data::PEER_ID,
            data::RELAY,
            data::PEERS,
            data::SENT_TOTAL,
            data::RECEIVED_TOTAL,
            data::ADDRESS,
            data::CHAIN,
            data::EXPIRES_AT,
            data::PERSISTENT,
            data::RDNS,
            data::UUID,
            data::SHA256,
            data::ROUND,
            data::REWARD,
            data::FIRST_REWARD,
            data::POLICY_VERSION,
            data::FAMILY,
            data::ACCURACY,
            data::BYTES,
        ];
        let mut seen = std::collections::BTreeSet::new();
        for name in names {
            let rest = name.strip_prefix("data-").unwrap_or_else(|| panic!("{name} is not a data-* attribute"));
            assert!(rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
            assert!(seen.insert(name), "{name} twice");
        }
    }
}
