//! Requests per minute per client IP on the routes that cost the relay most: bindings (a
//! signature check and a ledger write each), checkpoint downloads (megabytes of uplink each) and
//! model updates (decoding, screening and a disk write each). Over the limit a client gets 429
//! `rate_limited` naming the limit and when to try again, before its body is read.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::server::connection_of;
use crate::error::HttpError;
use crate::limits::{HttpRefusals, Limits, RateLimiter, ip_key};

/// A limited route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Bindings,
    Downloads,
    Updates,
}

impl Route {
    /// Its name in `http_refused`.
    fn kind(self) -> &'static str {
        match self {
            Route::Bindings => "bindings",
            Route::Downloads => "downloads",
            Route::Updates => "updates",
        }
    }

    /// What a client is told it sent too many of.
    fn noun(self) -> &'static str {
        match self {
            Route::Bindings => "bindings",
            Route::Downloads => "checkpoint downloads",
            Route::Updates => "model updates",
        }
    }
}

/// The per-IP request limits and what the HTTP side refused. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    limits: Arc<Limits>,
    buckets: Arc<Mutex<[RateLimiter<IpAddr>; 3]>>,
    refusals: HttpRefusals,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self::new(Arc::new(Limits::default()), HttpRefusals::default())
    }
}

impl RequestLimits {
    pub fn new(limits: Arc<Limits>, refusals: HttpRefusals) -> Self {
        let buckets = [limits.bindings_per_minute, limits.downloads_per_minute, limits.updates_per_minute]
            .map(RateLimiter::per_minute);
        Self { limits, buckets: Arc::new(Mutex::new(buckets)), refusals }
    }

    pub fn limits(&self) -> &Arc<Limits> {
        &self.limits
    }

    pub fn refusals(&self) -> &HttpRefusals {
        &self.refusals
    }

    /// Lets `request` through `route`'s limit, or says why not. Requests that did not come over a
    /// socket (a test calling the router) and loopback clients are not limited.
    pub fn check(&self, route: Route, request: &Request, now: Instant) -> Result<(), HttpError> {
        let Some(connection) = connection_of(request) else { return Ok(()) };
        let forwarded: Vec<&str> =
            request.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        let ip = self.limits.client_ip(connection.ip(), &forwarded);
        if !self.limits.applies_to(ip) {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = &mut buckets[route as usize];
        bucket.check(&ip_key(ip), now).map_err(|wait| {
            self.refusals.count(route.kind());
            HttpError::RateLimited { what: route.noun(), ip, per_minute: bucket.limit(), retry_after: wait }
        })
    }
}

/// Middleware: `route`'s limit in front of its handler.
pub async fn limited(State((limits, route)): State<(RequestLimits, Route)>, request: Request, next: Next) -> Response {
    match limits.check(route, &request, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// Whole seconds to wait, rounded up (what `Retry-After` says).
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}
