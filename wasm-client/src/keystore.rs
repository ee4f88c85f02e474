//! The tab's libp2p key and its binding, kept in IndexedDB so the tab is the same peer across
//! reloads (and one wallet signature serves a week of sessions). The key never leaves the tab:
//! only its public half and signatures go out. "New tab key" replaces it and forgets the binding.
//!
//! Several tabs of one browser must not be one peer (the relay would see one peer id on two
//! connections, and their rollouts would mix). Each open tab therefore holds one of [`SLOTS`] key
//! slots through the Web Locks API for as long as it is open; a reload frees its slot and takes
//! it again, so a tab keeps its key. A tab that finds every slot taken uses a key for this visit.

use libp2p::identity::Keypair;
use tabswarm_protocol::identity::SignedBinding;
use wasm_bindgen::prelude::*;
use web_sys::{IdbDatabase, IdbOpenDbRequest, IdbRequest, IdbTransactionMode};

const DB_NAME: &str = "tabswarm";
const DB_VERSION: u32 = 1;
const STORE: &str = "identity";
/// How many tabs of one browser can each keep a key of their own.
pub const SLOTS: u32 = 8;

/// The tab's identity store. Without IndexedDB (some private windows) it still works, but the
/// key lasts one page load: [`KeyStore::persistent`] says which.
#[derive(Debug)]
pub struct KeyStore {
    db: Option<IdbDatabase>,
    /// Which key slot this tab holds (its key is `peer-key`, `peer-key-1`, …).
    slot: u32,
    /// Why IndexedDB is not used, when it is not.
    pub unavailable: Option<String>,
}

impl KeyStore {
    /// Opens (creating on first use) the tab's database; never fails: without IndexedDB the
    /// store keeps nothing and says why.
    pub async fn open(window: &web_sys::Window) -> Self {
        let slot = match claim_slot(window).await {
            Ok(slot) => slot,
            Err(why) => return Self { db: None, slot: 0, unavailable: Some(why) },
        };
        match open_db(window).await {
            Ok(db) => Self { db: Some(db), slot, unavailable: None },
            Err(e) => Self { db: None, slot, unavailable: Some(e) },
        }
    }

    fn key_name(&self) -> String {
        if self.slot == 0 { "peer-key".into() } else { format!("peer-key-{}", self.slot) }
    }

    fn binding_name(&self) -> String {
        if self.slot == 0 { "binding".into() } else { format!("binding-{}", self.slot) }
    }

    pub fn persistent(&self) -> bool {
        self.db.is_some()
    }

    /// The stored peer key, or a new one (stored) when there is none or it cannot be read.
    /// `true` with the key when it was made now.
    pub async fn peer_key(&self) -> (Keypair, bool) {
        if let Ok(value) = self.get(&self.key_name()).await
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
            let stored = self.put(&self.key_name(), &js_sys::Uint8Array::from(bytes.as_slice()).into()).await;
            if let Err(e) = stored {
                web_sys::console::warn_1(&format!("tabswarm: the tab key cannot be kept: {e}").into());
            }
        }
        let _ = self.delete(&self.binding_name()).await;
        key
    }

    /// The binding stored by an earlier session, if any and readable.
    pub async fn binding(&self) -> Option<SignedBinding> {
        let text = self.get(&self.binding_name()).await.ok()?.as_string()?;
        serde_json::from_str(&text).ok()
    }

    pub async fn save_binding(&self, binding: &SignedBinding) -> Result<(), String> {
        let json = serde_json::to_string(binding).map_err(|e| e.to_string())?;
        self.put(&self.binding_name(), &json.into()).await
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

/// Takes the first free key slot with `navigator.locks.request(name, {ifAvailable: true})`, and
/// holds it until the page goes away (the lock's callback returns a promise that never settles).
/// Browsers without Web Locks share slot 0 (every current browser with WebGPU has them).
async fn claim_slot(window: &web_sys::Window) -> Result<u32, String> {
    let locks = js_sys::Reflect::get(&window.navigator(), &"locks".into()).unwrap_or(JsValue::UNDEFINED);
    let Some(request) =
        js_sys::Reflect::get(&locks, &"request".into()).ok().and_then(|f| f.dyn_into::<js_sys::Function>().ok())
    else {
        return Ok(0);
    };
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE);
    for slot in 0..SLOTS {
        let (tx, rx) = futures::channel::oneshot::channel::<bool>();
        let callback = Closure::once_into_js(move |lock: JsValue| -> js_sys::Promise {
            let held = !lock.is_null() && !lock.is_undefined();
            let _ = tx.send(held);
            if held { js_sys::Promise::new(&mut |_, _| {}) } else { js_sys::Promise::resolve(&JsValue::UNDEFINED) }
        });
        let name = JsValue::from(format!("tabswarm-peer-key-{slot}"));
        if request.call3(&locks, &name, &options, &callback).is_err() {
            return Ok(0);
        }
        if rx.await.unwrap_or(false) {
            return Ok(slot);
        }
    }
    Err(format!("{SLOTS} other tabs of this browser hold the stored keys, so this tab uses a key for this visit only"))
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
