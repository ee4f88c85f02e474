//! `fetch()` from the page and from the worker, with errors as sentences that name the URL.

use wasm_bindgen::JsCast;

/// GETs `url` from the page and returns its body as text; a non-2xx answer is an error.
pub(crate) async fn fetch_text(window: &web_sys::Window, url: &str) -> Result<String, String> {
    let response = fetch(window.fetch_with_str(url), url).await?;
    if !response.ok() {
        return Err(format!("the relay answered HTTP {} for {url}", response.status()));
    }
    response_text(&response, url).await
}

/// Awaits a `fetch()` promise (the page's or the worker's) for `url`.
pub(crate) async fn fetch(promise: js_sys::Promise, url: &str) -> Result<web_sys::Response, String> {
    wasm_bindgen_futures::JsFuture::from(promise)
        .await
        .map_err(|e| format!("cannot reach the relay for {url}: {e:?}"))?
        .dyn_into()
        .map_err(|_| format!("the browser returned no response for {url}"))
}

/// The body of `response` as text; `what` names it in the error.
pub(crate) async fn response_text(response: &web_sys::Response, what: &str) -> Result<String, String> {
    let text = wasm_bindgen_futures::JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("reading {what} failed: {e:?}"))?;
    Ok(text.as_string().unwrap_or_default())
}
