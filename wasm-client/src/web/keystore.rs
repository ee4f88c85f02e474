//! The tab's libp2p key and its binding, kept in IndexedDB so the tab is the same peer across
//! reloads (and one wallet signature serves a week of sessions). The key never leaves the tab:
//! only its public half and signatures go out. "New tab key" replaces it and forgets the binding.

use libp2p::identity::Keypair;
use tabswarm_protocol::identity::SignedBinding;
use wasm_bindgen::prelude::*;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

const DB_NAME: &str = "tabswarm";
const DB_VERSION: u32 = 1;
const STORE: &str = "identity";
const KEY: &str = "peer-key";
const BINDING: &str = "binding";

/// The tab's identity store. Without IndexedDB (some private windows) it still works, but the
/// key lasts one page load: [`KeyStore::persistent`] says which.
#[derive(Debug)]
pub struct KeyStore {
    db: Option<IdbDatabase>,
    /// Why IndexedDB is not used, when it is not.
    pub unavailable: Option<String>,
}

impl KeyStore {
    /// Opens (creating on first use) the tab's database; never fails: without IndexedDB the
    /// store keeps nothing and says why.
    pub async fn open(window: &web_sys::Window) -> Self {
        match open_db(window).await {
            Ok(db) => Self { db: Some(db), unavailable: None },
            Err(e) => Self { db: None, unavailable: Some(e) },
        }
    }

    pub fn persistent(&self) -> bool {
        self.db.is_some()
    }

    /// The stored peer key, or a new one (stored) when there is none or it cannot be read.
    /// `true` with the key when it was made now.
    pub async fn peer_key(&self) -> (Keypair, bool) {
        if let Ok(value) = self.get(KEY).await
            && let Some(bytes) = value.dyn_ref::<js_sys::Uint8Array>()
            && let Ok(key) = Keypair::from_protobuf_encoding(&bytes.to_vec())
        {
            return (key, false);
        }
        (self.replace_key().await, true)
    }

    /// A new peer key, stored in place of the old one; the old key's binding is forgotten.
    pub async fn replace_key(&self) -> Keypair {
        let key = Keypair::generate_ed25519();
        if let Ok(bytes) = key.to_protobuf_encoding() {
            let stored = self.put(KEY, &js_sys::Uint8Array::from(bytes.as_slice()).into()).await;
            if let Err(e) = stored {
                web_sys::console::warn_1(&format!("tabswarm: the tab key cannot be kept: {e}").into());
            }
        }
        let _ = self.delete(BINDING).await;
        key
    }

    /// The binding stored by an earlier session, if any and readable.
    pub async fn binding(&self) -> Option<SignedBinding> {
        let text = self.get(BINDING).await.ok()?.as_string()?;
        serde_json::from_str(&text).ok()
    }

    pub async fn save_binding(&self, binding: &SignedBinding) -> Result<(), String> {
        let json = serde_json::to_string(binding).map_err(|e| e.to_string())?;
        self.put(BINDING, &json.into()).await
    }

    async fn get(&self, key: &str) -> Result<JsValue, String> {
        let store = self.store(IdbTransactionMode::Readonly)?;
        done(&store.get(&key.into()).map_err(js_error)?).await
    }

    async fn put(&self, key: &str, value: &JsValue) -> Result<(), String> {
        let store = self.store(IdbTransactionMode::Readwrite)?;
        done(&store.put_with_key(value, &key.into()).map_err(js_error)?).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        let store = self.store(IdbTransactionMode::Readwrite)?;
        done(&store.delete(&key.into()).map_err(js_error)?).await.map(drop)
    }

    fn store(&self, mode: IdbTransactionMode) -> Result<web_sys::IdbObjectStore, String> {
        let db = self.db.as_ref().ok_or("IndexedDB is not available")?;
        db.transaction_with_str_and_mode(STORE, mode).and_then(|t| t.object_store(STORE)).map_err(js_error)
    }
}

async fn open_db(window: &web_sys::Window) -> Result<IdbDatabase, String> {
    let factory = window
        .indexed_db()
        .map_err(js_error)?
        .ok_or("this browser offers no IndexedDB here (a private window?): the tab key lasts until reload")?;
    let request: IdbOpenDbRequest = factory.open_with_u32(DB_NAME, DB_VERSION).map_err(js_error)?;
    let upgrade = {
        let request = request.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Ok(db) = request.result().and_then(|db| db.dyn_into::<IdbDatabase>())
                && !db.object_store_names().contains(STORE)
                && let Err(e) = db.create_object_store(STORE)
            {
                web_sys::console::error_1(&e);
            }
        })
    };
    request.set_onupgradeneeded(Some(upgrade.as_ref().unchecked_ref()));
    let db = done(&request).await;
    request.set_onupgradeneeded(None);
    drop(upgrade);
    db?.dyn_into().map_err(|_| "IndexedDB opened something that is not a database".to_owned())
}

/// Resolves with the request's result once it succeeds, or its error.
async fn done(request: &IdbRequest) -> Result<JsValue, String> {
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        let ok = {
            let request = request.clone();
            Closure::once_into_js(move || {
                let _ = resolve.call1(&JsValue::NULL, &request.result().unwrap_or(JsValue::UNDEFINED));
            })
        };
        let failed = {
            let request = request.clone();
            Closure::once_into_js(move || {
                let error = request.error().ok().flatten().map_or(JsValue::UNDEFINED, JsValue::from);
                let _ = reject.call1(&JsValue::NULL, &error);
            })
        };
        request.set_onsuccess(Some(ok.unchecked_ref()));
        request.set_onerror(Some(failed.unchecked_ref()));
    });
    wasm_bindgen_futures::JsFuture::from(promise).await.map_err(js_error)
}

fn js_error(e: JsValue) -> String {
    e.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.dyn_ref::<web_sys::DomException>().map(|e| format!("{}: {}", e.name(), e.message())))
        .unwrap_or_else(|| format!("{e:?}"))
}
