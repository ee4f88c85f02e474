//! The experiment's summary: its results as the Markdown table and SVG plot of `docs/learning.md`.

use std::fmt::Write;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tabswarm_protocol::tasks::Family;

use super::ArmResult;

/// Mean and (sample) standard deviation.
pub fn mean_std(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    let n = values.len() as f32;
    let mean = values.iter().sum::<f32>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Results grouped by local/external split, in first-seen order.
fn by_split(results: &[ArmResult]) -> Vec<((usize, usize), Vec<&ArmResult>)> {
    let mut groups: Vec<((usize, usize), Vec<&ArmResult>)> = Vec::new();
    for r in results {
        let key = (r.local, r.external);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    groups
}

/// One row per split: cumulative reward (mean ± std over seeds, and relative to the first split),
/// final greedy accuracy per family, and how many external groups were used per round.
pub fn markdown(results: &[ArmResult], families: &[Family]) -> String {
    let groups = by_split(results);
    let baseline = groups.first().map(|(_, m)| mean_std(&m.iter().map(|r| r.cumulative_reward).collect::<Vec<_>>()).0);
    let first = groups.first().map(|((i, j), _)| format!("vs {i}/{j}")).unwrap_or_else(|| "vs".into());
    let mut out = table_header(
        &["I/J", "seeds", "cumulative reward", &first, "mean acc."],
        families,
        &["groups trained / round (own + ext.)"],
    );
    for ((local, external), members) in &groups {
        let cumulative: Vec<f32> = members.iter().map(|r| r.cumulative_reward).collect();
        let (mean, std) = mean_std(&cumulative);
        let relative = baseline.map(|b| format!("{:+.0}%", (mean / b - 1.0) * 100.0)).unwrap_or_default();
        let accuracy = |f: &Family| {
            mean_std(&members.iter().map(|r| r.final_accuracy.get(f).copied().unwrap_or(0.0)).collect::<Vec<_>>())
        };
        let overall: Vec<f32> = members
            .iter()
            .map(|r| {
                families.iter().map(|f| r.final_accuracy.get(f).copied().unwrap_or(0.0)).sum::<f32>()
                    / families.len().max(1) as f32
            })
            .collect();
        let (acc, acc_std) = mean_std(&overall);
        let _ = write!(
            out,
            "| {local}/{external} | {} | {mean:.1} ± {std:.1} | {relative} | {:.1}% ± {:.1} |",
            members.len(),
            acc * 100.0,
            acc_std * 100.0
        );
        for f in families {
            let (a, s) = accuracy(f);
            let _ = write!(out, " {:.0}% ± {:.0} |", a * 100.0, s * 100.0);
        }
        let own = mean_std(&members.iter().map(|r| r.local_used).collect::<Vec<_>>()).0;
        let ext = mean_std(&members.iter().map(|r| r.external_used).collect::<Vec<_>>()).0;
        let _ = writeln!(out, " {own:.2} + {ext:.2} |");
    }
    out
}

/// Mean reward per round (over peers, then over seeds; moving average of 10 rounds) per split.
pub fn svg(results: &[ArmResult]) -> String {
    let mut curves: Vec<(String, Vec<(f32, f32)>)> = Vec::new();
    for ((local, external), members) in &by_split(results) {
        let rounds = members.iter().map(|r| r.reward_per_round.len()).min().unwrap_or(0);
        let mean: Vec<f32> = (0..rounds)
            .map(|t| members.iter().map(|r| r.reward_per_round[t]).sum::<f32>() / members.len() as f32)
            .collect();
        let smooth = (0..rounds)
            .map(|t| {
                let from = t.saturating_sub(9);
                ((t + 1) as f32, mean[from..=t].iter().sum::<f32>() / (t - from + 1) as f32)
            })
            .collect();
        curves.push((format!("{local}/{external}"), smooth));
    }
    plot("Mean reward per round (I/J = local/external groups; 10-round moving average)", "round", &curves)
}

/// Held-out accuracy (mean over seeds) at every evaluation point, per named configuration.
pub fn heldout_svg(results: &[ArmResult]) -> String {
    let mut curves: Vec<(String, Vec<(f32, f32)>)> = Vec::new();
    for (name, members) in by_name(results) {
        let points = members.iter().map(|r| r.heldout.len()).min().unwrap_or(0);
        let mut curve = Vec::with_capacity(points + 1);
        if let Some(base) = mean_of(members.iter().filter_map(|r| r.heldout_base)) {
            curve.push((0.0, base));
        }
        for t in 0..points {
            let round = members[0].heldout[t].0 as f32;
            curve.push((round, members.iter().map(|r| r.heldout[t].1).sum::<f32>() / members.len() as f32));
        }
        curves.push((name, curve));
    }
    plot("Held-out accuracy (mean over seeds; swarm version for meta configurations)", "round", &curves)
}

fn mean_of(values: impl Iterator<Item = f32>) -> Option<f32> {
    let v: Vec<f32> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f32>() / v.len() as f32)
}

/// Results grouped by configuration name, in first-seen order.
fn by_name(results: &[ArmResult]) -> Vec<(String, Vec<&ArmResult>)> {
    let mut groups: Vec<(String, Vec<&ArmResult>)> = Vec::new();
    for r in results {
        match groups.iter_mut().find(|(k, _)| *k == r.name) {
            Some((_, members)) => members.push(r),
            None => groups.push((r.name.clone(), vec![r])),
        }
    }
    groups
}

/// Line plot of (x, y) curves with a legend; the y axis spans the data plus a margin.
fn plot(title: &str, x_label: &str, curves: &[(String, Vec<(f32, f32)>)]) -> String {
    const W: f32 = 640.0;
    const H: f32 = 360.0;
    const PAD: f32 = 48.0;
    const COLORS: [&str; 6] = ["#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let xs = || curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.0));
    let ys = || curves.iter().flat_map(|(_, c)| c.iter().map(|p| p.1));
    let (x0, x1) = (xs().fold(f32::INFINITY, f32::min), xs().fold(f32::NEG_INFINITY, f32::max));
    let (x0, x1) = if x0.is_finite() && x1 > x0 { (x0, x1) } else { (0.0, 1.0) };
    let (lo, hi) = (ys().fold(f32::INFINITY, f32::min), ys().fold(f32::NEG_INFINITY, f32::max));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let margin = (hi - lo) * 0.1;
    let (bottom, top) = ((lo - margin).max(0.0), hi + margin);
    let x = |v: f32| PAD + (W - 2.0 * PAD) * (v - x0) / (x1 - x0);
    let y = |v: f32| H - PAD - (H - 2.0 * PAD) * (v - bottom) / (top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\">{title}</text>\n",
        W / 2.0
    );
    let _ =
        writeln!(s, "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>", H - PAD, W - PAD, H - PAD);
    let _ = writeln!(s, "<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"black\"/>", H - PAD);
    for k in 0..=4 {
        let v = bottom + (top - bottom) * k as f32 / 4.0;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.3}</text>", PAD - 4.0, y(v) + 4.0);
    }
    let _ = writeln!(s, "<text x=\"{PAD}\" y=\"{}\" >{x_label} {x0}</text>", H - PAD + 16.0);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{x_label} {x1}</text>", W - PAD, H - PAD + 16.0);
    for (i, (label, curve)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = curve.iter().map(|(a, b)| format!("{:.1},{:.1}", x(*a), y(*b))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label}</text>",
            PAD + 10.0 + 80.0 * i as f32,
            PAD - 8.0
        );
    }
    s.push_str("</svg>\n");
    s
}

/// One configuration over its seeds, in the shape of `docs/learning-swarm.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigSummary {
    pub name: String,
    pub seeds: usize,
    /// Mean over seeds of Σ over evaluation points of (held-out accuracy − the base's).
    pub gain_over_base: f32,
    pub gain_over_base_std: f32,
    pub cumulative_reward: f32,
    /// Mean over seeds of the final held-out accuracy, overall and per family.
    pub final_accuracy: f32,
    pub final_accuracy_std: f32,
    pub final_accuracy_per_family: BTreeMap<Family, f32>,
    pub bytes_per_peer: f64,
    /// One update and the model as f32, in bytes (meta configurations).
    pub update_bytes: Option<(usize, usize)>,
    /// Swarm versions published (mean over seeds).
    pub versions: f32,
    /// Updates refused, by reason, summed over seeds.
    pub refused: BTreeMap<String, u64>,
}

/// The configurations' summaries, in first-seen order.
pub fn configs(results: &[ArmResult]) -> Vec<ConfigSummary> {
    by_name(results)
        .into_iter()
        .map(|(name, members)| {
            let pick = |f: &dyn Fn(&ArmResult) -> f32| mean_std(&members.iter().map(|r| f(r)).collect::<Vec<_>>());
            let (gain, gain_std) = pick(&|r| r.gain_over_base.unwrap_or(f32::NAN));
            let (acc, acc_std) = pick(&|r| r.heldout.last().map_or(f32::NAN, |p| p.1));
            let mut per_family: BTreeMap<Family, f32> = BTreeMap::new();
            let mut refused: BTreeMap<String, u64> = BTreeMap::new();
            for r in &members {
                for (f, a) in &r.heldout_final {
                    *per_family.entry(*f).or_default() += a / members.len() as f32;
                }
                for (k, n) in &r.refused {
                    *refused.entry(k.clone()).or_default() += n;
                }
            }
            ConfigSummary {
                name,
                seeds: members.len(),
                gain_over_base: gain,
                gain_over_base_std: gain_std,
                cumulative_reward: pick(&|r| r.cumulative_reward).0,
                final_accuracy: acc,
                final_accuracy_std: acc_std,
                final_accuracy_per_family: per_family,
                bytes_per_peer: members.iter().map(|r| r.bytes_per_peer).sum::<f64>() / members.len() as f64,
                update_bytes: members[0].update_bytes,
                versions: pick(&|r| r.versions.len() as f32).0,
                refused,
            }
        })
        .collect()
}

/// The "join for an hour" comparison, in the shape of `docs/learning-swarm.json`'s `join`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinSummary {
    pub rounds: u64,
    /// Mean over seeds of the held-out accuracy the joining peer left with.
    pub joined_accuracy: f32,
    /// Mean over seeds of the held-out accuracy of a peer given the same rounds alone from the base.
    pub solo_accuracy: f32,
    /// The swarm versions the joining peer fed (first seed).
    pub versions_fed: Vec<String>,
}

/// The joining peers of `results` against the lone peers of `solo` (the same rounds from the base).
pub fn join(results: &[ArmResult], solo: &[ArmResult]) -> Option<JoinSummary> {
    let joins: Vec<&super::JoinResult> = results.iter().filter_map(|r| r.join.as_ref()).collect();
    let first = joins.first()?;
    let solo: Vec<f32> = solo.iter().filter_map(|r| r.heldout.last().map(|p| p.1)).collect();
    Some(JoinSummary {
        rounds: first.rounds,
        joined_accuracy: mean_std(&joins.iter().map(|j| j.accuracy).collect::<Vec<_>>()).0,
        solo_accuracy: mean_std(&solo).0,
        versions_fed: first.versions_fed.clone(),
    })
}

/// The configurations as a Markdown table: gain over base, final held-out accuracy (overall and
/// per family), cumulative training reward, bytes sent per peer, refused updates.
pub fn swarm_markdown(summaries: &[ConfigSummary], families: &[Family]) -> String {
    let mut out = table_header(
        &["config", "seeds", "gain over base", "held-out acc."],
        families,
        &["cumulative reward", "bytes sent / peer", "versions", "refused updates"],
    );
    for c in summaries {
        let _ = write!(
            out,
            "| {} | {} | {:.2} ± {:.2} | {:.1}% ± {:.1} |",
            c.name,
            c.seeds,
            c.gain_over_base,
            c.gain_over_base_std,
            c.final_accuracy * 100.0,
            c.final_accuracy_std * 100.0
        );
        for f in families {
            let _ = write!(out, " {:.0}% |", c.final_accuracy_per_family.get(f).copied().unwrap_or(0.0) * 100.0);
        }
        let refused: Vec<String> = c.refused.iter().map(|(k, n)| format!("{k} {n}")).collect();
        let _ = writeln!(
            out,
            " {:.1} | {} | {:.1} | {} |",
            c.cumulative_reward,
            human_bytes(c.bytes_per_peer),
            c.versions,
            if refused.is_empty() { "none".to_owned() } else { refused.join(", ") }
        );
    }
    out
}

/// A Markdown table's header and rule: `leading` columns, one per family, then `trailing`.
fn table_header(leading: &[&str], families: &[Family], trailing: &[&str]) -> String {
    let names: Vec<String> = leading
        .iter()
        .map(|c| c.to_string())
        .chain(families.iter().map(|f| f.to_string()))
        .chain(trailing.iter().map(|c| c.to_string()))
        .collect();
    format!("| {} |\n|{}\n", names.join(" | "), "---|".repeat(names.len()))
}

fn human_bytes(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
    } else if bytes >= 1024.0 {
        format!("{:.1} KiB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(local: usize, external: usize, seed: u64, cumulative: f32) -> ArmResult {
        ArmResult {
            local,
            external,
            seed,
            cumulative_reward: cumulative,
            reward_per_round: vec![0.1, 0.2, 0.3],
            final_accuracy: [(Family::Add, 0.5), (Family::Sub, 0.25)].into_iter().collect(),
            external_used: external as f32,
            local_used: local as f32,
            dropped: 0,
            ..ArmResult::default()
        }
    }

    #[test]
    fn table_reports_mean_spread_and_gain_over_the_first_split() {
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, std::f32::consts::SQRT_2));
        let results = [result(8, 0, 1, 100.0), result(8, 0, 2, 120.0), result(4, 4, 1, 210.0), result(4, 4, 2, 230.0)];
        let table = markdown(&results, &[Family::Add, Family::Sub]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(
            lines[0],
            "| I/J | seeds | cumulative reward | vs 8/0 | mean acc. | add | sub | groups trained / round (own + ext.) |"
        );
        assert_eq!(lines[1], "|---|".to_owned() + &"---|".repeat(7));
        assert!(
            lines[2].starts_with("| 8/0 | 2 | 110.0 ± 14.1 | +0% | 37.5% ± 0.0 | 50% ± 0 | 25% ± 0 |"),
            "{}",
            lines[2]
        );
        assert!(lines[3].starts_with("| 4/4 | 2 | 220.0 ± 14.1 | +100% |"), "{}", lines[3]);
        let svg = svg(&results);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
    }

    #[test]
    fn configurations_are_summarised_over_their_seeds() {
        let named = |name: &str, seed, base, points: &[f32], bytes| ArmResult {
            name: name.into(),
            heldout_base: Some(base),
            heldout: points.iter().enumerate().map(|(i, a)| (10 * (i as u64 + 1), *a)).collect(),
            gain_over_base: Some(points.iter().map(|a| a - base).sum()),
            heldout_final: [(Family::Add, *points.last().expect("ok"))].into_iter().collect(),
            bytes_per_peer: bytes,
            ..result(8, 0, seed, 10.0)
        };
        let results = [
            named("solo", 1, 0.2, &[0.2, 0.3], 0.0),
            named("meta", 1, 0.2, &[0.4, 0.6], 2048.0),
            named("solo", 2, 0.2, &[0.2, 0.5], 0.0),
        ];
        let summary = configs(&results);
        assert_eq!(summary.len(), 2);
        assert_eq!((summary[0].name.as_str(), summary[0].seeds), ("solo", 2));
        // Gains: (0 + 0.1) and (0 + 0.3) → mean 0.2; final accuracy (0.3 + 0.5) / 2.
        assert!((summary[0].gain_over_base - 0.2).abs() < 1e-6, "{:?}", summary[0]);
        assert!((summary[0].final_accuracy - 0.4).abs() < 1e-6);
        assert!((summary[0].final_accuracy_per_family[&Family::Add] - 0.4).abs() < 1e-6);
        assert!((summary[1].gain_over_base - 0.6).abs() < 1e-6);
        let table = swarm_markdown(&summary, &[Family::Add]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert_eq!(
            lines[0],
            "| config | seeds | gain over base | held-out acc. | add | cumulative reward | bytes sent / peer | versions | refused updates |"
        );
        assert_eq!(lines[1], "|---|".to_owned() + &"---|".repeat(8));
        assert!(lines[2].starts_with("| solo | 2 | 0.20 ± 0.14 | 40.0% ± 14.1 | 40% |"), "{}", lines[2]);
        assert!(lines[3].contains("| 2.0 KiB |"), "{}", lines[3]);
        let svg = heldout_svg(&results);
        assert_eq!(svg.matches("<polyline").count(), 2);
        // Starts at the base, at round 0.
        assert!(svg.contains(">round 0<"), "{svg}");
    }
}
