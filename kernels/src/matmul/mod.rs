//! Tiled matrix multiply (`matmul.wgsl`) and its CPU reference [`matmul_reference`].

use std::fmt;

use wgpu::util::DeviceExt;

use crate::gpu::{GpuContext, KernelError};

/// The WGSL source of the kernel.
pub const SHADER: &str = crate::shaders::MATMUL.source;
/// Rows and columns of C computed by one workgroup (must match `TILE_M`/`TILE_N` in the shader).
pub const TILE: usize = 64;

/// The shape of `C[m×n] = A[m×k] · B[k×n]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl MatmulShape {
    pub const fn new(m: usize, k: usize, n: usize) -> Self {
        Self { m, k, n }
    }

    /// Floating-point operations of one multiply (a multiply and an add per term).
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.k as f64 * self.n as f64
    }

    /// Checks that `a` and `b` hold exactly the values this shape needs.
    pub fn check_inputs(&self, a: &[f32], b: &[f32]) -> Result<(), KernelError> {
        check_len("A", a, self.m, self.k)?;
        check_len("B", b, self.k, self.n)
    }

    fn is_empty(&self) -> bool {
        self.m == 0 || self.k == 0 || self.n == 0
    }
}

impl fmt::Display for MatmulShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}×{} · {}×{}", self.m, self.k, self.k, self.n)
    }
}

fn check_len(name: &'static str, values: &[f32], rows: usize, cols: usize) -> Result<(), KernelError> {
    let expected = rows.checked_mul(cols).ok_or_else(|| KernelError::TooLarge {
        shape: format!("a {rows}×{cols} matrix"),
        reason: "its element count overflows usize".into(),
    })?;
    if values.len() != expected {
        return Err(KernelError::ShapeMismatch { name, rows, cols, expected, actual: values.len() });
    }
    Ok(())
}

/// The CPU reference: plain row-major triple loop (i-k-j order), f32 accumulation.
pub fn matmul_reference(a: &[f32], b: &[f32], shape: MatmulShape) -> Result<Vec<f32>, KernelError> {
    shape.check_inputs(a, b)?;
    let MatmulShape { m, k, n } = shape;
    let mut c = vec![0.0f32; m * n];
    if n == 0 {
        return Ok(c);
    }
    for (a_row, c_row) in a.chunks_exact(k.max(1)).zip(c.chunks_exact_mut(n)).take(m) {
        if k == 0 {
            break;
        }
        for (&a_ik, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
            for (c_ij, &b_kj) in c_row.iter_mut().zip(b_row) {
                *c_ij += a_ik * b_kj;
            }
        }
    }
    Ok(c)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Dims {
    m: u32,
    k: u32,
    n: u32,
    _pad: u32,
}

/// The compiled pipeline; create once per [`GpuContext`] and reuse.
#[derive(Debug)]
pub struct MatmulKernel {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

impl MatmulKernel {
    pub fn new(ctx: &GpuContext) -> Self {
        let device = &ctx.device;
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("matmul.wgsl"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("matmul"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: None,
                    },
                    count: None,
                },
                storage(1, true),
                storage(2, true),
                storage(3, false),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("matmul"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("matmul"),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        Self { pipeline, layout }
    }

    /// Computes `A · B` on the GPU and reads the result back.
    pub async fn run(
        &self,
        ctx: &GpuContext,
        a: &[f32],
        b: &[f32],
        shape: MatmulShape,
    ) -> Result<Vec<f32>, KernelError> {
        if shape.is_empty() {
            // Nothing to dispatch (and zero-sized bindings are invalid): the answer is all zeros.
            shape.check_inputs(a, b)?;
            return Ok(vec![0.0; shape.m * shape.n]);
        }
        let prepared = self.prepare(ctx, a, b, shape).await?;
        prepared.dispatch(ctx, 1).await?;
        prepared.read(ctx).await
    }

    /// Uploads `a` and `b` and allocates the output, so the multiply can be dispatched repeatedly
    /// (benchmarks) without paying for the transfers each time.
    pub async fn prepare(
        &self,
        ctx: &GpuContext,
        a: &[f32],
        b: &[f32],
        shape: MatmulShape,
    ) -> Result<PreparedMatmul, KernelError> {
        shape.check_inputs(a, b)?;
        if shape.is_empty() {
            return Err(KernelError::TooLarge {
                shape: shape.to_string(),
                reason: "a zero dimension leaves nothing to dispatch".into(),
            });
        }
        let limits = ctx.device.limits();
        let too_large = |reason: String| KernelError::TooLarge { shape: shape.to_string(), reason };
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        for (name, len) in [("A", shape.m * shape.k), ("B", shape.k * shape.n), ("C", shape.m * shape.n)] {
            let bytes = (len as u64).saturating_mul(4);
            if bytes > max_binding {
                return Err(too_large(format!("{name} needs {bytes} bytes, the device binds at most {max_binding}")));
            }
        }
        let groups_x = shape.n.div_ceil(TILE);
        let groups_y = shape.m.div_ceil(TILE);
        let max_groups = limits.max_compute_workgroups_per_dimension as usize;
        if groups_x > max_groups || groups_y > max_groups {
            return Err(too_large(format!(
                "it needs {groups_x}×{groups_y} workgroups, the device allows {max_groups} per dimension"
            )));
        }
        let to_u32 = |v: usize| u32::try_from(v).map_err(|_| too_large(format!("dimension {v} exceeds u32")));
        let dims = Dims { m: to_u32(shape.m)?, k: to_u32(shape.k)?, n: to_u32(shape.n)?, _pad: 0 };

        ctx.checked("matmul upload", || {
            let device = &ctx.device;
            let init = |label, contents: &[u8], usage| {
                device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(label), contents, usage })
            };
            let dims = init("matmul dims", bytemuck::bytes_of(&dims), wgpu::BufferUsages::UNIFORM);
            let a = init("matmul A", bytemuck::cast_slice(a), wgpu::BufferUsages::STORAGE);
            let b = init("matmul B", bytemuck::cast_slice(b), wgpu::BufferUsages::STORAGE);
            let c_bytes = (shape.m * shape.n * 4) as u64;
            let c = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("matmul C"),
                size: c_bytes,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("matmul readback"),
                size: c_bytes,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("matmul"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: dims.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: a.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 2, resource: b.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 3, resource: c.as_entire_binding() },
                ],
            });
            PreparedMatmul {
                shape,
                pipeline: self.pipeline.clone(),
                bind_group,
                c,
                staging,
                groups: (groups_x as u32, groups_y as u32),
            }
        })
        .await
    }
}

/// Inputs resident on the GPU, ready to multiply.
#[derive(Debug)]
pub struct PreparedMatmul {
    shape: MatmulShape,
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    c: wgpu::Buffer,
    staging: wgpu::Buffer,
    groups: (u32, u32),
}

impl PreparedMatmul {
    pub fn shape(&self) -> MatmulShape {
        self.shape
    }

    /// Runs the multiply `repeats` times in one submission and waits until the GPU is done.
    pub async fn dispatch(&self, ctx: &GpuContext, repeats: u32) -> Result<(), KernelError> {
        ctx.checked("matmul dispatch", || {
            let mut encoder =
                ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("matmul") });
            {
                let mut pass = encoder
                    .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("matmul"), timestamp_writes: None });
                pass.set_pipeline(&self.pipeline);
                pass.set_bind_group(0, &self.bind_group, &[]);
                for _ in 0..repeats {
                    pass.dispatch_workgroups(self.groups.0, self.groups.1, 1);
                }
            }
            ctx.queue.submit([encoder.finish()]);
        })
        .await?;
        ctx.finish().await
    }

    /// Copies the current result to the host.
    pub async fn read(&self, ctx: &GpuContext) -> Result<Vec<f32>, KernelError> {
        ctx.checked("matmul readback copy", || {
            let mut encoder =
                ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("matmul readback") });
            encoder.copy_buffer_to_buffer(&self.c, 0, &self.staging, 0, self.c.size());
            ctx.queue.submit([encoder.finish()]);
        })
        .await?;
        ctx.read_f32(&self.staging).await
    }
}

#[cfg(test)]
mod tests;
