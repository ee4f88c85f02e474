// Layer normalisation, backward, from the forward pass's per-row stats (mean_r, rstd_r):
//   x̂[r, j] = (x[r, j] − mean_r) · rstd_r,   g[r, j] = dy[r, j] · gamma[j]
//   dx[r, j] = rstd_r · (g[r, j] − mean_j g[r, :] − x̂[r, j] · mean_j (g[r, :] · x̂[r, :]))
//   dgamma[j] = Σ_r dy[r, j] · x̂[r, j],   dbeta[j] = Σ_r dy[r, j]
// One dispatch: threads 0..rows each write one row of dx, threads rows..rows+width each one
// column of dgamma and dbeta. Both read only the inputs, so neither waits on the other.

// Every binding is read_write although most are only read (see layer_norm.wgsl).
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> gamma: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<storage, read_write> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(6) var<storage, read_write> dbeta: array<f32>;
// info[0] = rows, info[1] = width of a row.
@group(0) @binding(7) var<storage, read_write> info: array<u32>;

const WG: u32 = 64u;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let rows = info[0];
    let width = info[1];
    let index = (wid.y * nwg.x + wid.x) * WG + lid;
    if (index < rows) {
        let base = index * width;
        let mean = stats[2u * index];
        let rstd = stats[2u * index + 1u];
        var sum_g = 0.0;
        var sum_gx = 0.0;
        for (var j = 0u; j < width; j = j + 1u) {
            let g = dy[base + j] * gamma[j];
            sum_g = sum_g + g;
            sum_gx = sum_gx + g * (x[base + j] - mean) * rstd;
        }
        let n = f32(width);
        let mean_g = sum_g / n;
        let mean_gx = sum_gx / n;
        for (var j = 0u; j < width; j = j + 1u) {
            let g = dy[base + j] * gamma[j];
            let xhat = (x[base + j] - mean) * rstd;
            dx[base + j] = rstd * (g - mean_g - xhat * mean_gx);
        }
    } else if (index < rows + width) {
        let j = index - rows;
        var sum_gamma = 0.0;
        var sum_beta = 0.0;
        for (var r = 0u; r < rows; r = r + 1u) {
            let d = dy[r * width + j];
            sum_gamma = sum_gamma + d * (x[r * width + j] - stats[2u * r]) * stats[2u * r + 1u];
            sum_beta = sum_beta + d;
        }
        dgamma[j] = sum_gamma;
        dbeta[j] = sum_beta;
    }
}
