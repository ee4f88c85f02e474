//! Opening a GPU device and reading buffers back without blocking.

use std::fmt;

/// Everything that can go wrong running a kernel. Each message names what was wrong.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No adapter: the browser has no WebGPU, or no native driver is installed.
    #[error("no GPU adapter is available ({0})")]
    NoAdapter(String),
    /// The adapter refused to open a device.
    #[error("the GPU adapter refused to open a device: {0}")]
    RequestDevice(String),
    /// An input's length does not match the shape it was given with.
    #[error("matrix {name} has {actual} values, but a {rows}×{cols} matrix needs {expected}")]
    ShapeMismatch { name: &'static str, rows: usize, cols: usize, expected: usize, actual: usize },
    /// The problem exceeds a device limit (buffer size or dispatch count).
    #[error("{shape} is too large for this device: {reason}")]
    TooLarge { shape: String, reason: String },
    /// wgpu reported a validation, out-of-memory or internal error for the work we submitted.
    #[error("the GPU rejected the {op} work: {message}")]
    Gpu { op: &'static str, message: String },
    /// Mapping the result buffer for reading failed (device lost, for example).
    #[error("reading the result back from the GPU failed: {0}")]
    Readback(String),
}

/// A device and queue, opened once and reused for every kernel call.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
}

impl fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GpuContext").field("adapter", &self.info).finish_non_exhaustive()
    }
}

impl GpuContext {
    /// Opens the best adapter available. Natively `WGPU_BACKEND` (e.g. `vulkan`) and
    /// `WGPU_ADAPTER_NAME` narrow the choice; in the browser this is WebGPU or nothing.
    pub async fn new() -> Result<Self, KernelError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| KernelError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("tabswarm"),
                // The adapter's own limits: a desktop GPU allows far larger buffers than the
                // WebGPU defaults, and the kernels check sizes against what the device grants.
                required_limits: adapter.limits(),
                ..Default::default()
            })
            .await
            .map_err(|e| KernelError::RequestDevice(e.to_string()))?;
        Ok(Self { device, queue, info })
    }

    /// What the adapter says about itself (name, backend, driver).
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Resolves once all work submitted so far has finished on the GPU.
    pub async fn finish(&self) -> Result<(), KernelError> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.queue.on_submitted_work_done(move || {
            let _ = tx.send(());
        });
        self.drive()?;
        rx.await.map_err(|_| KernelError::Readback("the device dropped the completion callback".into()))
    }

    /// Copies `buffer` (which must have `MAP_READ` usage) into a `Vec<f32>`.
    pub async fn read_f32(&self, buffer: &wgpu::Buffer) -> Result<Vec<f32>, KernelError> {
        let slice = buffer.slice(..);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            let _ = tx.send(result);
        });
        self.drive()?;
        rx.await
            .map_err(|_| KernelError::Readback("the device dropped the map callback".into()))?
            .map_err(|e| KernelError::Readback(e.to_string()))?;
        let values = {
            let view = slice.get_mapped_range().map_err(|e| KernelError::Readback(e.to_string()))?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        buffer.unmap();
        Ok(values)
    }

    /// Natively, callbacks only fire when the device is polled: wait for the queue here. In the
    /// browser the event loop fires them and this does nothing.
    fn drive(&self) -> Result<(), KernelError> {
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| KernelError::Readback(e.to_string()))?;
        Ok(())
    }

    /// Runs `record` inside validation and out-of-memory error scopes and turns anything the
    /// device reports into [`KernelError::Gpu`].
    pub(crate) async fn checked<T>(&self, op: &'static str, record: impl FnOnce() -> T) -> Result<T, KernelError> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = record();
        let validation = validation.pop().await;
        let oom = oom.pop().await;
        match validation.or(oom) {
            Some(error) => Err(KernelError::Gpu { op, message: error.to_string() }),
            None => Ok(value),
        }
    }
}
