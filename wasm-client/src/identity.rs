//! The page's identity panel: which wallets this browser has, connecting one, binding this tab's
//! peer key to the wallet's address with one `eth_signTypedData_v4` signature, posting the
//! binding to the relay and announcing it on gossip. Without a wallet the tab still learns; the
//! panel says what that forgoes.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use alloy_primitives::Address;
use futures::channel::mpsc::Sender;
use libp2p::identity::Keypair;
use tabswarm_net::NodeCommand;
use tabswarm_protocol::api::{ApiError, BindingAccepted};
use tabswarm_protocol::identity::{self, BindingDomain, SignedBinding};
use wasm_bindgen::prelude::*;

use crate::dom::Dom;
use crate::http::{fetch, fetch_text, response_text};
use crate::keystore::KeyStore;
use crate::provider::{self, Provider};
use crate::ui::{data, id, template};
use crate::wallet::{self, WalletError, chain_name, short_address, utc_minute};

/// How long the page waits for EIP-6963 announcements before trying `window.ethereum`.
const DISCOVERY_MS: i32 = 400;

pub(crate) struct Identity {
    dom: Rc<Dom>,
    window: web_sys::Window,
    store: KeyStore,
    key: Keypair,
    peer_id: String,
    commands: Sender<NodeCommand>,
    /// Whether the relay takes unbound rollouts (then an unbound tab shares, uncredited).
    accepts_unbound: bool,
    domain: RefCell<Option<BindingDomain>>,
    wallet: RefCell<Option<Rc<Provider>>>,
    account: Cell<Option<Address>>,
    chain: Cell<Option<u64>>,
    bound: RefCell<Option<SignedBinding>>,
    /// A connect or bind is under way (clicks meanwhile are ignored).
    busy: Cell<bool>,
    /// Providers whose events this page listens to (subscribed once each).
    listening: RefCell<Vec<String>>,
}

impl Identity {
    /// Shows the tab key, reuses a binding stored earlier (no prompt) and lists the wallets.
    pub(crate) fn start(
        dom: Rc<Dom>,
        window: web_sys::Window,
        store: KeyStore,
        key: Keypair,
        commands: Sender<NodeCommand>,
        accepts_unbound: bool,
    ) -> Rc<Self> {
        let peer_id = key.public().to_peer_id().to_string();
        let this = Rc::new(Self {
            dom,
            window,
            store,
            key,
            peer_id,
            commands,
            accepts_unbound,
            domain: RefCell::new(None),
            wallet: RefCell::new(None),
            account: Cell::new(None),
            chain: Cell::new(None),
            bound: RefCell::new(None),
            busy: Cell::new(false),
            listening: RefCell::new(Vec::new()),
        });
        this.show_tab_key();
        this.on_rotate();
        this.dom.enable(id::BIND, false);
        let bind = {
            let this = Rc::clone(&this);
            Closure::<dyn FnMut()>::new(move || {
                let wallet = this.wallet.borrow().clone();
                if let Some(wallet) = wallet {
                    wasm_bindgen_futures::spawn_local(Rc::clone(&this).connect_and_bind(wallet));
                }
            })
        };
        if let Some(button) = this.dom.button(id::BIND) {
            button.set_onclick(Some(bind.as_ref().unchecked_ref()));
        }
        bind.forget();
        this.unbound_message();
        wasm_bindgen_futures::spawn_local(Rc::clone(&this).load_domain());
        let (found, none) = (Rc::clone(&this), Rc::clone(&this));
        provider::discover(&this.window, move |p| found.add_wallet(p), move || none.no_wallet(), DISCOVERY_MS);
        this
    }

    fn show_tab_key(&self) {
        let short = format!("{}…{}", &self.peer_id[..8], &self.peer_id[self.peer_id.len() - 6..]);
        let text = match &self.store.unavailable {
            None => {
                format!("This tab's peer id is {short}. Its key stays in this browser (IndexedDB) and never leaves it.")
            }
            Some(why) => format!("This tab's peer id is {short}. Its key lasts until the page closes: {why}."),
        };
        self.dom.set(id::TAB_KEY, &text);
        self.dom.set_data(
            id::TAB_KEY,
            &[(data::PEER_ID, &self.peer_id), (data::PERSISTENT, &self.store.persistent().to_string())],
        );
    }

    /// "New tab key": a fresh peer key (the old binding is forgotten), then a reload so the swarm
    /// node runs under it.
    fn on_rotate(self: &Rc<Self>) {
        let this = Rc::clone(self);
        let click = Closure::<dyn FnMut()>::new(move || {
            let confirmed = this
                .window
                .confirm_with_message(
                    "Make a new key for this tab? The page reloads (learning in progress stops) and the new key needs a new wallet signature.",
                )
                .unwrap_or(false);
            if !confirmed {
                return;
            }
            let this = Rc::clone(&this);
            wasm_bindgen_futures::spawn_local(async move {
                this.dom.set_state(id::BINDING, "pending", "Making a new tab key…");
                this.store.replace_key().await;
                let _ = this.window.location().reload();
            });
        });
        if let Some(button) = self.dom.button(id::ROTATE_KEY) {
            button.set_onclick(Some(click.as_ref().unchecked_ref()));
            button.set_disabled(false); // the markup keeps it disabled until it does something
        }
        click.forget();
    }

    /// Whether the relay would take this tab's rollouts and swarm-model updates: it is bound to a
    /// wallet, or the relay takes unbound peers' (uncredited).
    pub(crate) fn can_feed(&self) -> bool {
        self.accepts_unbound || self.bound.borrow().is_some()
    }

    /// What an unbound tab does, in words.
    fn unbound_message(&self) {
        let sharing = if self.accepts_unbound {
            "its rollouts go to the swarm anonymously, credited to nobody"
        } else {
            "it keeps its rollouts (this relay takes rollouts only from peers bound to a wallet)"
        };
        self.dom.set_state(
            id::BINDING,
            "unbound",
            &format!(
                "Not bound to a wallet: this tab learns from the swarm, but {sharing}. One wallet signature credits this tab's verified work to your address for a week."
            ),
        );
    }

    async fn load_domain(self: Rc<Self>) {
        let domain = fetch_text(&self.window, "/api/identity").await.and_then(|text| {
            serde_json::from_str::<BindingDomain>(&text)
                .map_err(|e| format!("the relay's /api/identity is unreadable ({e})"))
        });
        let domain = match domain {
            Ok(domain) => domain,
            Err(e) => {
                self.dom.set_state(id::BINDING, "error", &format!("This relay cannot bind tabs to wallets: {e}."));
                return;
            }
        };
        *self.domain.borrow_mut() = Some(domain.clone());
        if let Some(stored) = self.store.binding().await
            && wallet::reusable(&stored, &domain, &self.peer_id, unix_now())
        {
            // Signed in an earlier session for this key: no prompt, announce it again.
            if let Err(e) = self.submit(stored, "signed earlier").await {
                self.dom.set_state(id::BINDING, "error", &e);
            }
        }
    }

    fn no_wallet(&self) {
        self.dom.set_state(
            id::WALLET,
            "none",
            "No wallet found in this browser. You can still contribute anonymously: the tab learns and checks others' work, but nothing is credited to you. A wallet extension (any EIP-6963 wallet) lets one signature credit this tab's work to your address.",
        );
    }

    /// A wallet announced itself: a button with its icon and name, from the page's template.
    fn add_wallet(self: &Rc<Self>, wallet: Rc<Provider>) {
        let Some(list) = self.dom.element(id::WALLETS) else { return };
        let Some(fragment) = self.dom.clone_template(template::WALLET_BUTTON) else { return };
        let Ok(Some(button)) = fragment.query_selector("button") else { return };
        let _ = button.set_attribute(data::RDNS, &wallet.info.rdns);
        let _ = button.set_attribute(data::UUID, &wallet.info.uuid);
        if let Ok(Some(icon)) = fragment.query_selector("img.icon") {
            if wallet.info.icon.is_empty() {
                icon.remove();
            } else {
                let _ = icon.set_attribute("src", &wallet.info.icon);
                let _ = icon.remove_attribute("hidden");
            }
        }
        if let Ok(Some(name)) = fragment.query_selector(".name") {
            name.set_text_content(Some(&format!("Connect {}", wallet.info.name)));
        }
        let _ = list.append_child(&fragment);
        let click = {
            let (this, wallet) = (Rc::clone(self), Rc::clone(&wallet));
            Closure::<dyn FnMut()>::new(move || {
                wasm_bindgen_futures::spawn_local(Rc::clone(&this).connect_and_bind(Rc::clone(&wallet)));
            })
        };
        if let Some(button) = button.dyn_ref::<web_sys::HtmlElement>() {
            button.set_onclick(Some(click.as_ref().unchecked_ref()));
        }
        click.forget();
        if self.account.get().is_none() {
            let count = list.child_element_count();
            let text = if count == 1 {
                format!("{} is available. Connect it to have this tab's work credited to you.", wallet.info.name)
            } else {
                format!("{count} wallets are available; pick the one to credit this tab's work to.")
            };
            self.dom.set_state(id::WALLET, "found", &text);
        }
    }

    /// Connects `wallet` (the wallet's prompt), then binds unless this tab is already bound to
    /// that account.
    async fn connect_and_bind(self: Rc<Self>, wallet: Rc<Provider>) {
        if self.busy.replace(true) {
            return;
        }
        let result = self.connect(&wallet).await;
        let result = match result {
            Ok(account) => {
                let bound_to = self.bound.borrow().as_ref().map(|b| b.address);
                match bound_to {
                    // Already bound to this account, or to another one (a peer id is bound to one
                    // address at a time: the relay would refuse, so no pointless prompt).
                    Some(_) => {
                        self.accounts_changed(&wallet.info.name, Some(account));
                        Ok(())
                    }
                    None => self.bind(&wallet, account).await,
                }
            }
            Err(e) => Err(e),
        };
        self.busy.set(false);
        if let Err(e) = result {
            self.show_wallet_error(&wallet, &e);
        }
    }

    async fn connect(self: &Rc<Self>, wallet: &Rc<Provider>) -> Result<Address, WalletError> {
        self.dom.set_state(id::WALLET, "connecting", &format!("Asking {} to connect this page…", wallet.info.name));
        let accounts = wallet.request_accounts().await?;
        let account =
            *accounts.first().ok_or_else(|| WalletError::Unauthorized { wallet: wallet.info.name.clone() })?;
        let chain = wallet.chain_id().await?;
        *self.wallet.borrow_mut() = Some(Rc::clone(wallet));
        self.account.set(Some(account));
        self.chain.set(Some(chain));
        self.listen(wallet);
        self.show_account();
        Ok(account)
    }

    fn show_account(&self) {
        let (Some(account), Some(wallet)) = (self.account.get(), self.wallet.borrow().clone()) else { return };
        let chain = self.chain.get().map(chain_name).unwrap_or_else(|| "an unknown chain".into());
        self.dom.set_state(
            id::WALLET,
            "connected",
            &format!("Connected {} · {} on {chain}.", wallet.info.name, account.to_checksum(None)),
        );
        self.dom.set_data(
            id::WALLET,
            &[
                (data::ADDRESS, &account.to_checksum(None)),
                (data::CHAIN, &self.chain.get().unwrap_or_default().to_string()),
            ],
        );
    }

    /// Follows the wallet's `accountsChanged` and `chainChanged`.
    fn listen(self: &Rc<Self>, wallet: &Rc<Provider>) {
        if self.listening.borrow().contains(&wallet.info.uuid) {
            return;
        }
        self.listening.borrow_mut().push(wallet.info.uuid.clone());
        let (this, name) = (Rc::clone(self), wallet.info.name.clone());
        wallet.on("accountsChanged", move |accounts| {
            let accounts = wallet::parse_accounts(&name, &provider::strings(&accounts)).unwrap_or_default();
            this.accounts_changed(&name, accounts.first().copied());
        });
        let (this, name) = (Rc::clone(self), wallet.info.name.clone());
        wallet.on("chainChanged", move |chain| {
            let text = chain.as_string().unwrap_or_default();
            if let Ok(chain) = wallet::parse_chain_id(&name, &text) {
                this.chain.set(Some(chain));
                this.show_account();
            }
        });
    }

    fn accounts_changed(&self, wallet: &str, account: Option<Address>) {
        self.account.set(account);
        let bound = self.bound.borrow().clone();
        let Some(account) = account else {
            let kept = bound.map_or(String::new(), |b| {
                format!(" The binding already signed stays valid until {}.", utc_minute(b.binding.expires_at))
            });
            self.dom.set_state(id::WALLET, "disconnected", &format!("{wallet} disconnected this page.{kept}"));
            if let Some(el) = self.dom.element(id::WALLET) {
                let _ = el.remove_attribute(data::ADDRESS);
            }
            return;
        };
        self.show_account();
        match bound {
            Some(b) if b.address != account => self.dom.set_state(
                id::BINDING,
                "other-account",
                &format!(
                    "Your wallet switched to {}. This tab's key stays bound to {} until {}; to be credited as {} instead, make a new tab key and bind it.",
                    short_address(&account),
                    short_address(&b.address),
                    utc_minute(b.binding.expires_at),
                    short_address(&account)
                ),
            ),
            Some(_) => self.show_bound(),
            None => self.dom.enable(id::BIND, true),
        }
    }

    /// One signature: the binding of this tab's peer key to `account`, for the relay's domain.
    async fn bind(&self, wallet: &Provider, account: Address) -> Result<(), WalletError> {
        let Some(domain) = self.domain.borrow().clone() else {
            self.dom.set_state(
                id::BINDING,
                "error",
                "The relay has not said what to sign yet (is it reachable?); try again shortly.",
            );
            self.dom.enable(id::BIND, true);
            return Ok(());
        };
        if self.chain.get() != Some(domain.chain_id) {
            self.dom.set_state(
                id::BINDING,
                "switching",
                &format!(
                    "This swarm records bindings on {}; asking {} to switch…",
                    chain_name(domain.chain_id),
                    wallet.info.name
                ),
            );
            wallet.switch_chain(domain.chain_id).await?;
            self.chain.set(Some(wallet.chain_id().await?));
            self.show_account();
        }
        let mut random = [0u8; 32];
        if let Err(e) = getrandom::fill(&mut random) {
            self.dom.set_state(
                id::BINDING,
                "error",
                &format!("This browser gave no random numbers for the binding's nonce ({e})."),
            );
            return Ok(());
        }
        let binding = wallet::new_binding(&domain, &self.peer_id, random, unix_now());
        let typed_data = domain.typed_data(&binding).to_string();
        self.dom.set_state(
            id::BINDING,
            "signing",
            &format!(
                "Sign in {} to bind this tab to {} until {} (no transaction, no fee).",
                wallet.info.name,
                short_address(&account),
                utc_minute(binding.expires_at)
            ),
        );
        let signature = wallet.sign_typed_data(&account, &typed_data).await?;
        let signed = match identity::with_wallet_signature(binding, &domain, account, signature, &self.key) {
            Ok(signed) => signed,
            Err(e) => {
                self.dom.set_state(id::BINDING, "error", &format!("The tab key could not sign its part: {e}"));
                return Ok(());
            }
        };
        // The wallet may have signed with another account than the one shown: the relay says so.
        if let Err(e) = self.submit(signed, "just signed").await {
            self.dom.set_state(id::BINDING, "error", &e);
            self.dom.enable(id::BIND, true);
        }
        Ok(())
    }

    /// Posts `signed` to the relay; once accepted, keeps it and announces it on gossip.
    async fn submit(&self, signed: SignedBinding, when: &str) -> Result<(), String> {
        self.dom.set_state(id::BINDING, "posting", "Sending the binding to the relay…");
        let body = serde_json::to_string(&signed).map_err(|e| e.to_string())?;
        let (status, text) = post_json(&self.window, "/api/bindings", &body).await?;
        if !(200..300).contains(&status) {
            let reason = serde_json::from_str::<ApiError>(&text).map(|e| e.message).unwrap_or(text);
            return Err(format!("The relay refused the binding ({when}): {reason}"));
        }
        let accepted: BindingAccepted = serde_json::from_str(&text)
            .map_err(|e| format!("The relay's answer to the binding is unreadable ({e})"))?;
        if let Err(e) = self.store.save_binding(&signed).await {
            web_sys::console::warn_1(&format!("tabswarm: the binding cannot be kept for the next visit: {e}").into());
        }
        let mut commands = self.commands.clone();
        if commands.try_send(NodeCommand::Bind(Box::new(signed.clone()))).is_err() {
            return Err("The swarm node stopped; reload the page to bind again.".into());
        }
        *self.bound.borrow_mut() = Some(signed);
        self.show_bound();
        self.dom.set_data(
            id::BINDING,
            &[(data::ADDRESS, &accepted.address), (data::EXPIRES_AT, &accepted.expires_at.to_string())],
        );
        self.dom.enable(id::BIND, false);
        Ok(())
    }

    fn show_bound(&self) {
        let Some(b) = self.bound.borrow().clone() else { return };
        self.dom.set_state(
            id::BINDING,
            "bound",
            &format!(
                "Bound: this tab's verified rollouts are credited to {} until {}. The relay's leaderboard counts only what it checked itself.",
                b.address.to_checksum(None),
                utc_minute(b.binding.expires_at)
            ),
        );
    }

    fn show_wallet_error(&self, wallet: &Provider, error: &WalletError) {
        let (state, text) = if error.is_rejection() {
            ("rejected", format!("No problem: {error}. This tab keeps learning; connect again whenever you like."))
        } else {
            ("error", format!("The wallet did not complete: {error}."))
        };
        self.dom.set_state(id::WALLET, state, &text);
        if self.account.get().is_some() {
            // Connected, but the binding did not happen: offer to try again.
            self.dom.enable(id::BIND, self.bound.borrow().is_none());
            if self.bound.borrow().is_none() {
                self.dom.set_state(
                    id::BINDING,
                    "unbound",
                    &format!("Not bound yet: {error}. Click \"Bind this tab\" to try again with {}.", wallet.info.name),
                );
            }
        }
    }
}

fn unix_now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// POSTs a JSON body to the relay; the status and the body text.
async fn post_json(window: &web_sys::Window, url: &str, body: &str) -> Result<(u16, String), String> {
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    let headers = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&headers, &"content-type".into(), &"application/json".into());
    init.set_headers(&headers);
    let response = fetch(window.fetch_with_str_and_init(url, &init), url).await?;
    Ok((response.status(), response_text(&response, url).await?))
}
