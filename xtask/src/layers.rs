//! The house rule of the workspace, as a test: which of our crates each crate may depend on
//! (docs/architecture.md, "What may depend on what"). A dependency outside a crate's row fails the
//! test, so nothing below ever starts depending on the browser crate or the relay.

/// `(folder, crate, the crates of ours it may depend on)`.
pub const LAYERS: &[(&str, &str, &[&str])] = &[
    ("protocol", "tabswarm-protocol", &[]),
    ("kernels", "tabswarm-kernels", &[]),
    ("model", "tabswarm-model", &["tabswarm-kernels", "tabswarm-protocol"]),
    ("aggregate", "tabswarm-aggregate", &["tabswarm-protocol"]),
    ("learn", "tabswarm-learn", &["tabswarm-model", "tabswarm-kernels", "tabswarm-aggregate", "tabswarm-protocol"]),
    ("net", "tabswarm-net", &["tabswarm-protocol"]),
    (
        "wasm-client",
        "tabswarm-client",
        &["tabswarm-kernels", "tabswarm-protocol", "tabswarm-model", "tabswarm-learn", "tabswarm-net"],
    ),
    (
        "peer",
        "tabswarm-peer",
        &["tabswarm-protocol", "tabswarm-model", "tabswarm-aggregate", "tabswarm-learn", "tabswarm-net"],
    ),
    (
        "relay",
        "tabswarm-relay",
        // devchain and net in its tests only (a local chain; native peers publishing to the relay
        // binary while it is killed).
        &[
            "tabswarm-protocol",
            "tabswarm-aggregate",
            "tabswarm-model",
            "tabswarm-learn",
            "tabswarm-devchain",
            "tabswarm-net",
        ],
    ),
    // Load for a relay: light peers made of the protocol and the peer's libp2p settings.
    ("loadgen", "tabswarm-loadgen", &["tabswarm-protocol", "tabswarm-net"]),
    ("devchain", "tabswarm-devchain", &[]),
    ("xtask", "xtask", &["tabswarm-e2e", "tabswarm-devchain"]),
];

/// The crates of ours named as dependencies (of any kind, on any target) in a `Cargo.toml`.
pub fn our_dependencies(manifest: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line.trim_matches(['[', ']']).ends_with("dependencies");
            continue;
        }
        if !in_dependencies {
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if (name.starts_with("tabswarm-") || name == "xtask") && !found.iter().any(|f| f == name) {
            found.push(name.to_owned());
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn our_dependencies_are_read_from_every_dependency_table() {
        let manifest = "[package]\nname = \"tabswarm-x\"\n[dependencies]\ntabswarm-model.workspace = true\nserde = \"1\"\n\
                        [target.'cfg(target_arch = \"wasm32\")'.dependencies]\ntabswarm-net = { workspace = true }\n\
                        [dev-dependencies]\ntabswarm-relay.workspace = true\n[features]\ntabswarm-fake = []\n";
        assert_eq!(our_dependencies(manifest), ["tabswarm-model", "tabswarm-net", "tabswarm-relay"]);
    }

    #[test]
    fn every_crate_depends_only_on_the_layers_below_it() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        for (folder, name, allowed) in LAYERS {
            let path = root.join(folder).join("Cargo.toml");
            let manifest = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(manifest.contains(&format!("name = \"{name}\"")), "{} is not {name}", path.display());
            for dependency in our_dependencies(&manifest) {
                assert!(
                    allowed.contains(&dependency.as_str()),
                    "{name} depends on {dependency}, which docs/architecture.md does not allow it"
                );
            }
        }
    }

    #[test]
    fn every_workspace_member_has_a_row() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
        let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("root Cargo.toml");
        let members = manifest.lines().find(|l| l.starts_with("members")).expect("members");
        for member in members.split('"').skip(1).step_by(2) {
            assert!(
                member == "tests" || LAYERS.iter().any(|(folder, _, _)| *folder == member),
                "workspace member {member} has no row in LAYERS"
            );
        }
    }
}
