//! The widget on a site owner's page, in headless Chromium: how much it adds to the host page's
//! load before anyone consents, and the duty cycle the learning run holds at each budget.
//!
//! ```sh
//! cargo xtask build
//! # inside a loopback-only namespace (Chromium reaches for outside hosts otherwise):
//! unshare --net sh -c 'ip link set lo up && ip addr add 198.51.100.1/32 dev lo && exec "$@"' sh \
//!   cargo bench -p tabswarm-e2e --bench widget -- --budgets 25,50,100 --seconds 60 --loads 10
//! ```
//! Writes `target/e2e/bench-widget.json` and prints a table for docs/benchmarks.md. Needs
//! `chromium` and `chromedriver` (`CHROME`, `CHROMEDRIVER`, `TABSWARM_ASSETS` as the e2e tests).

use std::time::Duration;

use fantoccini::{Client, Locator};
use tabswarm_client::ui::embed;

#[path = "../browser.rs"]
mod browser;
use browser::*;

struct Args {
    budgets: Vec<u8>,
    seconds: u64,
    loads: usize,
}

fn args() -> Args {
    let mut args = Args { budgets: vec![25, 50, 100], seconds: 60, loads: 10 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--budgets" => {
                args.budgets = value()
                    .split(',')
                    .map(|b| b.parse().ok().filter(|b| (1..=100).contains(b)).expect("--budgets: whole numbers 1-100"))
                    .collect()
            }
            "--seconds" => args.seconds = value().parse().expect("--seconds: a whole number"),
            "--loads" => args.loads = value().parse().expect("--loads: a whole number"),
            "--bench" => {} // what `cargo bench` passes
            other => panic!("unknown flag {other} (flags: --budgets 25,50,100 --seconds 60 --loads 10)"),
        }
    }
    args
}

/// The page's navigation timing (ms from navigation start): DOMContentLoaded and load.
async fn timing(client: &Client) -> (f64, f64) {
    let value = client
        .execute(
            "const n = performance.getEntriesByType('navigation')[0]; return [n.domContentLoadedEventEnd, n.loadEventEnd];",
            vec![],
        )
        .await
        .expect("js");
    let pair: Vec<f64> = serde_json::from_value(value).expect("two numbers");
    (pair[0], pair[1])
}

/// Loads `url` and waits for its load event (and, with the widget, for the card to say `idle`);
/// returns (DOMContentLoaded, load, widget ready) in ms from navigation start.
async fn load(client: &Client, url: &str, widget: bool) -> (f64, f64, Option<f64>) {
    client.goto(url).await.expect("load the host page");
    let ready = if widget {
        wait_widget(client, "showed itself", Duration::from_secs(30), |state, _| state == "idle").await;
        let t = client
            .execute("return window.__events.find((e) => e.kind === 'state')?.t ?? null", vec![])
            .await
            .expect("js");
        t.as_f64()
    } else {
        None
    };
    loop {
        let (dcl, onload) = timing(client).await;
        if onload > 0.0 {
            return (dcl, onload, ready);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    if xs.is_empty() { f64::NAN } else { xs[xs.len() / 2] }
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = tempfile::tempdir().expect("temp dir");
    let (base, _) = make_base(dir.path());
    let relay = start_relay_serving(Some(base)).await;
    let mut report = serde_json::Map::new();

    // Load time before consent: the same page with and without the widget, first (cold cache) and
    // then alternating (warm).
    {
        let (site, _server) = host_site(&relay.url, 50);
        let (_driver, client) = start_browser(&[]).await;
        let cold_plain = load(&client, &format!("{site}/plain?cold"), false).await;
        let cold_widget = load(&client, &format!("{site}/?cold"), true).await;
        let (mut plain, mut with, mut ready) = (vec![], vec![], vec![]);
        for i in 0..args.loads {
            plain.push(load(&client, &format!("{site}/plain?{i}"), false).await.1);
            let (_, onload, card) = load(&client, &format!("{site}/?{i}"), true).await;
            with.push(onload);
            ready.extend(card);
        }
        println!(
            "| host page | load event, first load | load event, median of {} | widget card ready, median |",
            args.loads
        );
        println!("|---|---:|---:|---:|");
        println!("| without the widget | {:.0} ms | {:.0} ms | — |", cold_plain.1, median(plain.clone()));
        println!(
            "| with the widget (before consent) | {:.0} ms | {:.0} ms | {:.0} ms |",
            cold_widget.1,
            median(with.clone()),
            median(ready.clone())
        );
        report.insert(
            "load".into(),
            serde_json::json!({
                "cold_plain_ms": cold_plain.1, "cold_widget_ms": cold_widget.1, "cold_widget_ready_ms": cold_widget.2,
                "plain_ms": plain, "widget_ms": with, "widget_ready_ms": ready,
            }),
        );
        let _ = client.close().await;
    }

    // The duty cycle each budget holds, each in a fresh browser (consent is remembered per site).
    println!();
    println!("| budget | duty cycle held | over | rounds |");
    println!("|---:|---:|---:|---:|");
    let mut duties = vec![];
    for &budget in &args.budgets {
        let (site, _server) = host_site(&relay.url, budget);
        let (_driver, client) = start_browser(&[]).await;
        open_host_page(&client, &site).await;
        enter_widget_frame(&client).await;
        client.find(Locator::Id(embed::CONTRIBUTE)).await.expect("Contribute").click().await.expect("click");
        let (duty, wall_ms, rounds) = measure_duty(&client, Duration::from_secs(args.seconds)).await;
        println!("| {budget} % | {:.1} % | {:.0} s | {rounds} |", duty * 100.0, wall_ms / 1000.0);
        duties.push(serde_json::json!({ "budget": budget, "duty": duty, "wall_ms": wall_ms, "rounds": rounds }));
        let _ = client.close().await;
    }
    report.insert("duty".into(), duties.into());
    save_text("bench-widget.json", &serde_json::to_string_pretty(&report).expect("json"));
}
