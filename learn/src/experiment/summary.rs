//! The experiment's summary: its results as the Markdown table and SVG plot of `docs/learning.md`.

use std::fmt::Write;

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
    let mut out = String::new();
    let _ = write!(out, "| I/J | seeds | cumulative reward | vs {} | mean acc. |", {
        groups.first().map(|((i, j), _)| format!("{i}/{j}")).unwrap_or_default()
    });
    for f in families {
        let _ = write!(out, " {f} |");
    }
    out.push_str(" groups trained / round (own + ext.) |\n|---|---|---|---|---|");
    for _ in families {
        out.push_str("---|");
    }
    out.push_str("---|\n");
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
    const W: f32 = 640.0;
    const H: f32 = 360.0;
    const PAD: f32 = 48.0;
    const COLORS: [&str; 6] = ["#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let groups = by_split(results);
    let mut curves: Vec<(String, Vec<f32>)> = Vec::new();
    for ((local, external), members) in &groups {
        let rounds = members.iter().map(|r| r.reward_per_round.len()).min().unwrap_or(0);
        let mean: Vec<f32> = (0..rounds)
            .map(|t| members.iter().map(|r| r.reward_per_round[t]).sum::<f32>() / members.len() as f32)
            .collect();
        let smooth: Vec<f32> = (0..rounds)
            .map(|t| {
                let from = t.saturating_sub(9);
                mean[from..=t].iter().sum::<f32>() / (t - from + 1) as f32
            })
            .collect();
        curves.push((format!("{local}/{external}"), smooth));
    }
    let rounds = curves.iter().map(|(_, c)| c.len()).max().unwrap_or(1).max(2);
    // The axis spans the data (plus a margin), not 0..max: the configurations differ by little.
    let values = || curves.iter().flat_map(|(_, c)| c.iter().copied());
    let (lo, hi) = (values().fold(f32::INFINITY, f32::min), values().fold(f32::NEG_INFINITY, f32::max));
    let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
    let margin = (hi - lo) * 0.1;
    let (bottom, top) = ((lo - margin).max(0.0), hi + margin);
    let x = |t: usize| PAD + (W - 2.0 * PAD) * t as f32 / (rounds - 1) as f32;
    let y = |v: f32| H - PAD - (H - 2.0 * PAD) * (v - bottom) / (top - bottom);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\">Mean reward per round (I/J = local/external groups; 10-round moving average)</text>\n",
        W / 2.0
    );
    let _ =
        writeln!(s, "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>", H - PAD, W - PAD, H - PAD);
    let _ = writeln!(s, "<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"black\"/>", H - PAD);
    for k in 0..=4 {
        let v = bottom + (top - bottom) * k as f32 / 4.0;
        let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.3}</text>", PAD - 4.0, y(v) + 4.0);
    }
    let _ = writeln!(s, "<text x=\"{PAD}\" y=\"{}\" >round 1</text>", H - PAD + 16.0);
    let _ = writeln!(s, "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">round {rounds}</text>", W - PAD, H - PAD + 16.0);
    for (i, (label, curve)) in curves.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = curve.iter().enumerate().map(|(t, v)| format!("{:.1},{:.1}", x(t), y(*v))).collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>",
            points.join(" ")
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label}</text>",
            PAD + 10.0 + 60.0 * i as f32,
            PAD - 8.0
        );
    }
    s.push_str("</svg>\n");
    s
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
        }
    }

    #[test]
    fn table_reports_mean_spread_and_gain_over_the_first_split() {
        assert_eq!(mean_std(&[1.0, 3.0]), (2.0, std::f32::consts::SQRT_2));
        let results = [result(8, 0, 1, 100.0), result(8, 0, 2, 120.0), result(4, 4, 1, 210.0), result(4, 4, 2, 230.0)];
        let table = markdown(&results, &[Family::Add, Family::Sub]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("| I/J | seeds | cumulative reward | vs 8/0 |"), "{table}");
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
}
