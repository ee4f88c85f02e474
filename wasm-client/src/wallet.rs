//! The wallet side of a binding that does not need a browser: what EIP-1193 errors mean to the
//! contributor, chain ids and signatures as wallets write them, and whether a binding this tab
//! stored earlier still serves (so one wallet prompt covers many sessions, never one per
//! contribution). The page's calls into the wallet extension are in `provider`.

use alloy_primitives::{Address, B256};
use tabswarm_net::BINDING_VALIDITY_SECS;
use tabswarm_protocol::identity::{self, Binding, BindingDomain, SignedBinding};

/// A stored binding with less time than this left is renewed (a new prompt) instead of reused.
pub const RENEW_BEFORE_SECS: u64 = 3600;

/// Why a wallet request did not give what was asked, from the EIP-1193 / EIP-1474 error codes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalletError {
    /// 4001: the contributor said no in the wallet.
    #[error("you declined the request in {wallet}")]
    Rejected { wallet: String },
    /// 4100: the page is not connected to this account.
    #[error("{wallet} has not authorised this page for that account; connect again")]
    Unauthorized { wallet: String },
    /// 4200: the wallet does not offer the method.
    #[error("{wallet} does not support {method}, which binding needs")]
    Unsupported { wallet: String, method: String },
    /// 4900 / 4901: the wallet is not connected to any chain (or not to the one asked).
    #[error("{wallet} is disconnected from the network; check the wallet and try again")]
    Disconnected { wallet: String },
    /// 4902: `wallet_switchEthereumChain` to a chain the wallet does not know.
    #[error("{wallet} does not know chain {chain}; add it in the wallet, then try again")]
    UnknownChain { wallet: String, chain: u64 },
    /// -32002: the same request is already waiting in the wallet.
    #[error("{wallet} already shows a request from this page; answer it in the wallet")]
    Pending { wallet: String },
    /// The wallet answered, but not with what the standard says it returns.
    #[error("{wallet} gave an unreadable answer to {method}: {detail}")]
    BadAnswer { wallet: String, method: String, detail: String },
    #[error("{wallet} refused {method} ({code}: {message})")]
    Other { wallet: String, method: String, code: i64, message: String },
}

impl WalletError {
    /// The error a provider raised for `method`, by its EIP-1193 `code` (absent when the wallet
    /// threw something that is not a provider error).
    pub fn from_rpc(wallet: &str, method: &str, code: Option<i64>, message: &str, chain: Option<u64>) -> Self {
        let wallet = wallet.to_owned();
        match code {
            Some(4001) => Self::Rejected { wallet },
            Some(4100) => Self::Unauthorized { wallet },
            Some(4200) | Some(-32601) => Self::Unsupported { wallet, method: method.to_owned() },
            Some(4900) | Some(4901) => Self::Disconnected { wallet },
            Some(4902) => Self::UnknownChain { wallet, chain: chain.unwrap_or_default() },
            Some(-32002) => Self::Pending { wallet },
            code => Self::Other {
                wallet,
                method: method.to_owned(),
                code: code.unwrap_or_default(),
                message: message.chars().take(200).collect(),
            },
        }
    }

    /// Whether the contributor chose this (a "no" is not a failure to apologise for).
    pub fn is_rejection(&self) -> bool {
        matches!(self, Self::Rejected { .. })
    }

    fn bad_answer(wallet: &str, method: &str, detail: impl Into<String>) -> Self {
        Self::BadAnswer { wallet: wallet.to_owned(), method: method.to_owned(), detail: detail.into() }
    }
}

/// A chain id as EIP-1193 returns it (`eth_chainId`: a `0x` hex quantity; some wallets send a
/// decimal string or number instead, which is accepted too).
pub fn parse_chain_id(wallet: &str, text: &str) -> Result<u64, WalletError> {
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.map_err(|_| WalletError::bad_answer(wallet, "eth_chainId", format!("{text:?} is not a chain id")))
}

/// `0x…` hex for `wallet_switchEthereumChain`.
pub fn chain_id_hex(chain: u64) -> String {
    format!("{chain:#x}")
}

/// A chain's common name, for the page ("chain 31337" alone tells a contributor little).
pub fn chain_name(chain: u64) -> String {
    let name = match chain {
        1 => "Ethereum",
        10 => "OP Mainnet",
        137 => "Polygon",
        8453 => "Base",
        42161 => "Arbitrum One",
        11155111 => "Sepolia",
        84532 => "Base Sepolia",
        17000 => "Holesky",
        31337 => "a local development chain",
        _ => return format!("chain {chain}"),
    };
    format!("{name} (chain {chain})")
}

/// The accounts `eth_requestAccounts` / `accountsChanged` gave, each checked.
pub fn parse_accounts(wallet: &str, accounts: &[String]) -> Result<Vec<Address>, WalletError> {
    accounts
        .iter()
        .map(|a| {
            a.parse::<Address>().map_err(|e| {
                WalletError::bad_answer(wallet, "eth_requestAccounts", format!("{a:?} is not an address: {e}"))
            })
        })
        .collect()
}

/// The 65-byte signature `eth_signTypedData_v4` returns as hex.
pub fn parse_signature(wallet: &str, hex: &str) -> Result<Vec<u8>, WalletError> {
    let digits = hex.strip_prefix("0x").unwrap_or(hex);
    let bytes = alloy_primitives::hex::decode(digits)
        .map_err(|e| WalletError::bad_answer(wallet, "eth_signTypedData_v4", format!("not hex: {e}")))?;
    if bytes.len() != 65 {
        return Err(WalletError::bad_answer(
            wallet,
            "eth_signTypedData_v4",
            format!("a signature is 65 bytes, this one {}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// `0x1234…cdef` (checksummed) for places where the whole address does not fit.
pub fn short_address(address: &Address) -> String {
    let full = address.to_checksum(None);
    format!("{}…{}", &full[..6], &full[full.len() - 4..])
}

/// A new binding of `peer_id` for `domain`, from now for [`BINDING_VALIDITY_SECS`], with a nonce
/// from `random` (32 bytes from the OS: two tabs never share one).
pub fn new_binding(domain: &BindingDomain, peer_id: &str, random: [u8; 32], now: u64) -> Binding {
    domain.binding(peer_id, B256::from(random), now, BINDING_VALIDITY_SECS)
}

/// Whether `stored` (what this tab kept from an earlier session) can be announced again instead
/// of asking the wallet: made for this peer and this relay's domain, valid, and not about to
/// expire. Verification is the relay's, so a binding that passes here also passes there.
pub fn reusable(stored: &SignedBinding, domain: &BindingDomain, peer_id: &str, now: u64) -> bool {
    stored.binding.peer_id == peer_id
        && identity::verify(stored, domain, now).is_ok()
        && stored.binding.expires_at > now.saturating_add(RENEW_BEFORE_SECS)
}

/// `2026-11-26 18:30 UTC` for a unix time (the page shows when a binding ends).
pub fn utc_minute(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", secs / 3600, secs % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain() -> BindingDomain {
        BindingDomain {
            chain_id: 31337,
            verifying_contract: Address::repeat_byte(0x11),
            swarm_id: "tabswarm".into(),
            relay_domain: "127.0.0.1:8080".into(),
        }
    }

    fn signed(now: u64, validity: u64) -> (SignedBinding, String) {
        let peer = libp2p::identity::Keypair::generate_ed25519();
        let id = peer.public().to_peer_id().to_string();
        let wallet = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).expect("key");
        let binding = domain().binding(&id, B256::repeat_byte(3), now, validity);
        (identity::sign_with_key(binding, &domain(), &wallet, &peer).expect("sign"), id)
    }

    #[test]
    fn provider_errors_map_to_what_the_contributor_can_do() {
        let rejected = WalletError::from_rpc("MetaMask", "eth_requestAccounts", Some(4001), "User rejected", None);
        assert!(rejected.is_rejection());
        assert_eq!(rejected.to_string(), "you declined the request in MetaMask");
        let unknown = WalletError::from_rpc("Rabby", "wallet_switchEthereumChain", Some(4902), "", Some(31337));
        assert_eq!(unknown, WalletError::UnknownChain { wallet: "Rabby".into(), chain: 31337 });
        assert!(matches!(
            WalletError::from_rpc("W", "eth_signTypedData_v4", Some(4200), "", None),
            WalletError::Unsupported { method, .. } if method == "eth_signTypedData_v4"
        ));
        assert!(matches!(WalletError::from_rpc("W", "m", Some(-32002), "", None), WalletError::Pending { .. }));
        let other = WalletError::from_rpc("W", "eth_chainId", None, &"x".repeat(500), None);
        assert!(!other.is_rejection());
        assert!(other.to_string().len() < 300, "long wallet messages are cut: {other}");
    }

    #[test]
    fn chain_ids_as_wallets_write_them() {
        assert_eq!(parse_chain_id("W", "0x7a69"), Ok(31337));
        assert_eq!(parse_chain_id("W", "0X1"), Ok(1));
        assert_eq!(parse_chain_id("W", "8453"), Ok(8453));
        let err = parse_chain_id("W", "0xzz").expect_err("not hex");
        assert!(err.to_string().contains("\"0xzz\" is not a chain id"), "{err}");
        assert_eq!(chain_id_hex(31337), "0x7a69");
        assert_eq!(chain_name(8453), "Base (chain 8453)");
        assert_eq!(chain_name(999_999), "chain 999999");
    }

    #[test]
    fn accounts_and_signatures_are_checked() {
        let a = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
        let parsed = parse_accounts("W", &[a.to_lowercase()]).expect("address");
        assert_eq!(parsed[0].to_checksum(None), a);
        assert_eq!(short_address(&parsed[0]), "0xf39F…2266");
        let err = parse_accounts("W", &["0x12".into()]).expect_err("short address");
        assert!(err.to_string().contains("\"0x12\" is not an address"), "{err}");

        assert_eq!(parse_signature("W", &format!("0x{}", "ab".repeat(65))).expect("65 bytes").len(), 65);
        let err = parse_signature("W", &format!("0x{}", "ab".repeat(64))).expect_err("64 bytes");
        assert!(err.to_string().contains("65 bytes, this one 64"), "{err}");
        assert!(parse_signature("W", "0xnothex").is_err());
    }

    #[test]
    fn a_stored_binding_is_reused_only_for_the_same_peer_domain_and_time() {
        let now = 1_800_000_000;
        let (stored, id) = signed(now, BINDING_VALIDITY_SECS);
        assert!(reusable(&stored, &domain(), &id, now + 3600));
        // Another peer key (rotated), another relay domain, or a binding about to end: ask again.
        assert!(!reusable(&stored, &domain(), "12D3KooWother", now));
        let elsewhere = BindingDomain { relay_domain: "relay.example:443".into(), ..domain() };
        assert!(!reusable(&stored, &elsewhere, &id, now));
        assert!(!reusable(&stored, &domain(), &id, now + BINDING_VALIDITY_SECS - 60));
        // Tampered after signing: the relay would refuse it, so the page does not reuse it.
        let mut tampered = stored.clone();
        tampered.binding.expires_at += 1;
        assert!(!reusable(&tampered, &domain(), &id, now));
    }

    #[test]
    fn new_bindings_last_a_week_and_carry_the_random_nonce() {
        let b = new_binding(&domain(), "12D3KooWpeer", [9; 32], 1_800_000_000);
        assert_eq!(b.expires_at - b.issued_at, BINDING_VALIDITY_SECS);
        assert_eq!(b.nonce, B256::repeat_byte(9));
        assert_eq!((b.chain_id, b.relay_domain.as_str()), (31337, "127.0.0.1:8080"));
    }

    #[test]
    fn utc_minutes() {
        assert_eq!(utc_minute(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(1_800_000_000), "2027-01-15 08:00 UTC");
        assert_eq!(utc_minute(4_102_444_799), "2099-12-31 23:59 UTC");
    }
}
