//! Wallet extensions from wasm: EIP-6963 discovery (every wallet announces itself with a name and
//! an icon, so several installed wallets do not fight over `window.ethereum`), with the legacy
//! `window.ethereum` as fallback, and EIP-1193 `request` / events. What the answers mean is in
//! [`crate::wallet`].

use std::rc::Rc;

use alloy_primitives::Address;
use wasm_bindgen::prelude::*;

use crate::wallet::{self, WalletError};

/// An EIP-6963 provider's `info` (or a stand-in for `window.ethereum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    pub uuid: String,
    pub name: String,
    /// A `data:image/…` URI, or empty (anything else is not shown: the page loads no remote icons).
    pub icon: String,
    pub rdns: String,
}

/// One wallet the page can talk to.
#[derive(Debug)]
pub struct Provider {
    pub info: ProviderInfo,
    inner: JsValue,
}

impl Provider {
    /// `request({method, params})`, awaited; provider errors become [`WalletError`]s.
    pub async fn request(&self, method: &str, params: JsValue, chain: Option<u64>) -> Result<JsValue, WalletError> {
        let name = &self.info.name;
        let unsupported = || WalletError::Unsupported { wallet: name.clone(), method: method.to_owned() };
        let request: js_sys::Function = js_sys::Reflect::get(&self.inner, &"request".into())
            .ok()
            .and_then(|f| f.dyn_into().ok())
            .ok_or_else(unsupported)?;
        let args = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&args, &"method".into(), &method.into());
        if !params.is_undefined() {
            let _ = js_sys::Reflect::set(&args, &"params".into(), &params);
        }
        let promise = request.call1(&self.inner, &args).map_err(|e| provider_error(name, method, &e, chain))?;
        let promise = js_sys::Promise::resolve(&promise);
        wasm_bindgen_futures::JsFuture::from(promise).await.map_err(|e| provider_error(name, method, &e, chain))
    }

    /// `eth_requestAccounts`: asks the contributor to connect (the wallet's prompt).
    pub async fn request_accounts(&self) -> Result<Vec<Address>, WalletError> {
        let answer = self.request("eth_requestAccounts", JsValue::UNDEFINED, None).await?;
        wallet::parse_accounts(&self.info.name, &strings(&answer))
    }

    pub async fn chain_id(&self) -> Result<u64, WalletError> {
        let answer = self.request("eth_chainId", JsValue::UNDEFINED, None).await?;
        let text = answer.as_string().or_else(|| answer.as_f64().map(|n| (n as u64).to_string())).unwrap_or_default();
        wallet::parse_chain_id(&self.info.name, &text)
    }

    /// `wallet_switchEthereumChain` (EIP-3326).
    pub async fn switch_chain(&self, chain: u64) -> Result<(), WalletError> {
        let param = js_sys::Object::new();
        let _ = js_sys::Reflect::set(&param, &"chainId".into(), &wallet::chain_id_hex(chain).into());
        self.request("wallet_switchEthereumChain", js_sys::Array::of1(&param).into(), Some(chain)).await.map(drop)
    }

    /// `eth_signTypedData_v4(address, typedDataJson)`: the one signature that binds the tab.
    pub async fn sign_typed_data(&self, address: &Address, typed_data: &str) -> Result<Vec<u8>, WalletError> {
        let params = js_sys::Array::of2(&address.to_checksum(None).into(), &typed_data.into());
        let answer = self.request("eth_signTypedData_v4", params.into(), None).await?;
        wallet::parse_signature(&self.info.name, &answer.as_string().unwrap_or_default())
    }

    /// Subscribes `handler` to an EIP-1193 event (`accountsChanged`, `chainChanged`); the handler
    /// lives as long as the page.
    pub fn on(&self, event: &str, handler: impl FnMut(JsValue) + 'static) {
        let Some(on) =
            js_sys::Reflect::get(&self.inner, &"on".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        else {
            return; // a provider without events: the page refreshes on the next request instead
        };
        let handler = Closure::<dyn FnMut(JsValue)>::new(handler);
        let _ = on.call2(&self.inner, &event.into(), handler.as_ref());
        handler.forget();
    }
}

/// The strings in a JS array (accounts).
pub fn strings(value: &JsValue) -> Vec<String> {
    js_sys::Array::from(value).iter().filter_map(|v| v.as_string()).collect()
}

fn provider_error(wallet: &str, method: &str, error: &JsValue, chain: Option<u64>) -> WalletError {
    let code = js_sys::Reflect::get(error, &"code".into()).ok().and_then(|c| c.as_f64()).map(|c| c as i64);
    let message = js_sys::Reflect::get(error, &"message".into())
        .ok()
        .and_then(|m| m.as_string())
        .unwrap_or_else(|| format!("{error:?}"));
    WalletError::from_rpc(wallet, method, code, &message, chain)
}

fn string_field(object: &JsValue, field: &str) -> String {
    js_sys::Reflect::get(object, &field.into()).ok().and_then(|v| v.as_string()).unwrap_or_default()
}

/// Listens for EIP-6963 announcements and asks wallets to announce themselves; `found` gets each
/// wallet once (wallets that load later announce then, and are added). After `fallback_ms`
/// without any announcement, a legacy `window.ethereum` is offered as "Browser wallet";
/// `none` runs when there is neither.
pub fn discover(
    window: &web_sys::Window,
    found: impl Fn(Rc<Provider>) + 'static,
    none: impl FnOnce() + 'static,
    fallback_ms: i32,
) {
    let found = Rc::new(found);
    let seen = Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let announce = {
        let (found, seen) = (Rc::clone(&found), Rc::clone(&seen));
        Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let detail = js_sys::Reflect::get(&event, &"detail".into()).unwrap_or(JsValue::UNDEFINED);
            let info = js_sys::Reflect::get(&detail, &"info".into()).unwrap_or(JsValue::UNDEFINED);
            let inner = js_sys::Reflect::get(&detail, &"provider".into()).unwrap_or(JsValue::UNDEFINED);
            let icon = string_field(&info, "icon");
            let info = ProviderInfo {
                uuid: string_field(&info, "uuid"),
                name: string_field(&info, "name"),
                icon: if icon.starts_with("data:image/") { icon } else { String::new() },
                rdns: string_field(&info, "rdns"),
            };
            if inner.is_object() && !info.name.is_empty() && !seen.borrow().contains(&info.uuid) {
                seen.borrow_mut().push(info.uuid.clone());
                found(Rc::new(Provider { info, inner }));
            }
        })
    };
    let _ = window.add_event_listener_with_callback("eip6963:announceProvider", announce.as_ref().unchecked_ref());
    announce.forget(); // wallets may announce at any time while the page is open
    if let Ok(request) = web_sys::Event::new("eip6963:requestProvider") {
        let _ = window.dispatch_event(&request);
    }

    let fallback = {
        let window = window.clone();
        Closure::once_into_js(move || {
            if !seen.borrow().is_empty() {
                return;
            }
            let legacy = js_sys::Reflect::get(&window, &"ethereum".into()).unwrap_or(JsValue::UNDEFINED);
            if legacy.is_object() {
                let info = ProviderInfo {
                    uuid: "window.ethereum".into(),
                    name: "Browser wallet".into(),
                    icon: String::new(),
                    rdns: String::new(),
                };
                seen.borrow_mut().push(info.uuid.clone());
                found(Rc::new(Provider { info, inner: legacy }));
            } else {
                none();
            }
        })
    };
    let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(fallback.unchecked_ref(), fallback_ms);
}
