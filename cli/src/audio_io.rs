//! Audio devices through cpal (feature `audio-io`, on by default): `qwen3-speech devices` and
//! microphone capture for `listen`.
//!
//! On Linux cpal talks to ALSA (PulseAudio and PipeWire are reached through their ALSA
//! plugins, e.g. the `pulse` / `pipewire` devices), so building needs `libasound2-dev`.

use std::sync::mpsc::Sender;

use anyhow::{Context, Result, anyhow, bail};
use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use serde_json::{Value, json};

/// One device as `devices` shows it.
pub struct DeviceInfo {
    pub name: String,
    pub id: String,
    pub is_default: bool,
    /// "2 ch, 48000 Hz, f32", when the device reports a default configuration.
    pub config: Option<String>,
}

fn config_text(c: &cpal::SupportedStreamConfig) -> String {
    format!(
        "{} ch, {} Hz, {}",
        c.channels(),
        c.sample_rate(),
        c.sample_format()
    )
}

fn device_name(d: &cpal::Device) -> String {
    d.description()
        .map(|desc| desc.name().to_string())
        .unwrap_or_else(|_| d.to_string())
}

fn device_id(d: &cpal::Device) -> String {
    d.id().map(|id| id.to_string()).unwrap_or_default()
}

/// Input and output devices of the default host.
pub fn list_devices() -> Result<(String, Vec<DeviceInfo>, Vec<DeviceInfo>)> {
    let host = cpal::default_host();
    let default_in = host.default_input_device().map(|d| device_id(&d));
    let default_out = host.default_output_device().map(|d| device_id(&d));
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    let devices = host
        .devices()
        .with_context(|| format!("cannot list the {} devices", host.id().name()))?;
    for d in devices {
        let id = device_id(&d);
        let name = device_name(&d);
        if let Ok(c) = d.default_input_config() {
            inputs.push(DeviceInfo {
                name: name.clone(),
                is_default: default_in.as_deref() == Some(id.as_str()),
                id: id.clone(),
                config: Some(config_text(&c)),
            });
        }
        if let Ok(c) = d.default_output_config() {
            outputs.push(DeviceInfo {
                name,
                is_default: default_out.as_deref() == Some(id.as_str()),
                id,
                config: Some(config_text(&c)),
            });
        }
    }
    Ok((host.id().name().to_string(), inputs, outputs))
}

pub fn devices_json(host: &str, inputs: &[DeviceInfo], outputs: &[DeviceInfo]) -> Value {
    let list = |v: &[DeviceInfo]| -> Vec<Value> {
        v.iter()
            .map(|d| {
                json!({"name": d.name, "id": d.id, "default": d.is_default, "config": d.config})
            })
            .collect()
    };
    json!({"host": host, "inputs": list(inputs), "outputs": list(outputs)})
}

/// Finds an input device: the default one, or the first whose name or id equals `wanted`,
/// else the first that contains it (case-insensitive).
fn find_input(host: &cpal::Host, wanted: Option<&str>) -> Result<cpal::Device> {
    let Some(wanted) = wanted else {
        return host.default_input_device().ok_or_else(|| {
            anyhow!(
                "no default input device on the {} host (see `qwen3-speech devices`)",
                host.id().name()
            )
        });
    };
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .with_context(|| format!("cannot list the {} input devices", host.id().name()))?
        .collect();
    let named: Vec<(String, String)> = devices
        .iter()
        .map(|d| (device_name(d), device_id(d)))
        .collect();
    let exact = named.iter().position(|(n, id)| n == wanted || id == wanted);
    let lower = wanted.to_lowercase();
    let partial = || {
        named.iter().position(|(n, id)| {
            n.to_lowercase().contains(&lower) || id.to_lowercase().contains(&lower)
        })
    };
    match exact.or_else(partial) {
        Some(i) => Ok(devices
            .into_iter()
            .nth(i)
            .expect("index from the same list")),
        None => {
            let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "no input device matches '{wanted}'; available: {}",
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
    }
}

/// A running capture: mono `f32` blocks at `sample_rate` arrive on the channel given to
/// [`start_capture`]. Dropping it stops the device.
pub struct Capture {
    _stream: cpal::Stream,
    pub sample_rate: u32,
    pub description: String,
}

/// Opens `device` (default: the host's default input) with its default configuration and
/// sends every callback's samples, downmixed to mono `f32`, to `tx`. Stream errors go to
/// `on_error` (e.g. "device disconnected").
pub fn start_capture(
    device: Option<&str>,
    tx: Sender<Vec<f32>>,
    on_error: impl FnMut(String) + Send + 'static,
) -> Result<Capture> {
    let host = cpal::default_host();
    let dev = find_input(&host, device)?;
    let name = device_name(&dev);
    let config = dev
        .default_input_config()
        .with_context(|| format!("input device '{name}' has no usable configuration"))?;
    let channels = usize::from(config.channels()).max(1);
    let sample_rate = config.sample_rate();
    let description = format!("'{name}' ({})", config_text(&config));
    let stream_config: cpal::StreamConfig = config.config();
    let stream = match config.sample_format() {
        SampleFormat::F32 => build::<f32>(&dev, &stream_config, channels, tx, on_error),
        SampleFormat::F64 => build::<f64>(&dev, &stream_config, channels, tx, on_error),
        SampleFormat::I16 => build::<i16>(&dev, &stream_config, channels, tx, on_error),
        SampleFormat::I32 => build::<i32>(&dev, &stream_config, channels, tx, on_error),
        SampleFormat::I8 => build::<i8>(&dev, &stream_config, channels, tx, on_error),
        SampleFormat::U16 => build::<u16>(&dev, &stream_config, channels, tx, on_error),
        SampleFormat::U8 => build::<u8>(&dev, &stream_config, channels, tx, on_error),
        other => bail!("input device '{name}' delivers {other} samples, which are not supported"),
    }
    .with_context(|| format!("cannot open input device '{name}'"))?;
    stream
        .play()
        .with_context(|| format!("cannot start input device '{name}'"))?;
    Ok(Capture {
        _stream: stream,
        sample_rate,
        description,
    })
}

fn build<T>(
    dev: &cpal::Device,
    config: &cpal::StreamConfig,
    channels: usize,
    tx: Sender<Vec<f32>>,
    mut on_error: impl FnMut(String) + Send + 'static,
) -> std::result::Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    dev.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _: &cpal::InputCallbackInfo| {
            let inv = 1.0 / channels as f32;
            let mono: Vec<f32> = if channels == 1 {
                data.iter().map(|s| s.to_sample::<f32>()).collect()
            } else {
                data.chunks_exact(channels)
                    .map(|frame| frame.iter().map(|s| s.to_sample::<f32>()).sum::<f32>() * inv)
                    .collect()
            };
            // The receiver may be gone while the stream shuts down.
            let _ = tx.send(mono);
        },
        move |e| on_error(e.to_string()),
        None,
    )
}

/// A running playback: samples pushed with [`Playback::push`] are played in order on the output
/// device. Dropping it stops the device.
pub struct Playback {
    stream: cpal::Stream,
    queue: std::sync::Arc<std::sync::Mutex<PlayQueue>>,
    resampler: Option<qwen3_speech::engine::audio::StreamingResampler>,
    pub description: String,
}

#[derive(Default)]
struct PlayQueue {
    samples: std::collections::VecDeque<f32>,
    /// Set when a stream error occurred (the device went away).
    error: Option<String>,
}

/// Opens the output `device` (default: the host's default output) to play mono audio at
/// `rate`; the audio is resampled to the device's rate and copied to all its channels.
pub fn start_playback(device: Option<&str>, rate: u32) -> Result<Playback> {
    let host = cpal::default_host();
    let dev = match device {
        None => host
            .default_output_device()
            .ok_or_else(|| anyhow!("no output device (see `qwen3-speech devices`)"))?,
        Some(wanted) => {
            let lower = wanted.to_lowercase();
            host.output_devices()
                .context("cannot list output devices")?
                .find(|d| {
                    device_name(d).to_lowercase().contains(&lower)
                        || device_id(d).to_lowercase().contains(&lower)
                })
                .ok_or_else(|| anyhow!("no output device matches '{wanted}'"))?
        }
    };
    let name = device_name(&dev);
    let config = dev
        .default_output_config()
        .with_context(|| format!("output device '{name}' has no usable configuration"))?;
    let channels = usize::from(config.channels()).max(1);
    let device_rate = config.sample_rate();
    let description = format!("'{name}' ({})", config_text(&config));
    if config.sample_format() != SampleFormat::F32 && config.sample_format() != SampleFormat::I16 {
        bail!(
            "output device '{name}' takes {} samples, which are not supported",
            config.sample_format()
        );
    }
    let queue = std::sync::Arc::new(std::sync::Mutex::new(PlayQueue::default()));
    let q = queue.clone();
    let qe = queue.clone();
    let on_error = move |e| {
        if let Ok(mut g) = qe.lock() {
            g.error = Some(format!("{e}"));
        }
    };
    let stream_config: cpal::StreamConfig = config.config();
    let stream = match config.sample_format() {
        SampleFormat::F32 => dev.build_output_stream::<f32, _, _>(
            stream_config,
            move |out: &mut [f32], _| fill(out, channels, &q, |x| x),
            on_error,
            None,
        ),
        _ => dev.build_output_stream::<i16, _, _>(
            stream_config,
            move |out: &mut [i16], _| {
                fill(
                    out,
                    channels,
                    &q,
                    qwen3_speech::engine::audio::wav::f32_to_pcm16,
                )
            },
            on_error,
            None,
        ),
    }
    .with_context(|| format!("cannot open output device '{name}'"))?;
    stream
        .play()
        .with_context(|| format!("cannot start output device '{name}'"))?;
    let resampler = if device_rate == rate {
        None
    } else {
        Some(qwen3_speech::engine::audio::StreamingResampler::new(
            rate,
            device_rate,
        )?)
    };
    Ok(Playback {
        stream,
        queue,
        resampler,
        description,
    })
}

/// Copies queued samples into a device buffer (silence when the queue runs dry).
fn fill<T: Copy + Default>(
    out: &mut [T],
    channels: usize,
    queue: &std::sync::Mutex<PlayQueue>,
    convert: impl Fn(f32) -> T,
) {
    let Ok(mut q) = queue.lock() else {
        out.fill(T::default());
        return;
    };
    for frame in out.chunks_mut(channels) {
        let v = q.samples.pop_front().map_or(T::default(), &convert);
        frame.fill(v);
    }
}

impl Playback {
    /// Queues mono samples for playback.
    pub fn push(&mut self, samples: &[f32]) -> Result<()> {
        let samples = match &mut self.resampler {
            Some(r) => r.push(samples)?,
            None => samples.to_vec(),
        };
        let mut q = self
            .queue
            .lock()
            .map_err(|_| anyhow!("playback queue poisoned"))?;
        if let Some(e) = q.error.take() {
            bail!("playback failed: {e}");
        }
        q.samples.extend(samples);
        Ok(())
    }

    /// Plays what is still queued, then stops.
    pub fn finish(mut self) -> Result<()> {
        if let Some(r) = &mut self.resampler {
            let tail = r.flush()?;
            self.queue
                .lock()
                .map_err(|_| anyhow!("playback queue poisoned"))?
                .samples
                .extend(tail);
        }
        loop {
            let q = self
                .queue
                .lock()
                .map_err(|_| anyhow!("playback queue poisoned"))?;
            if let Some(e) = &q.error {
                bail!("playback failed: {e}");
            }
            if q.samples.is_empty() {
                break;
            }
            drop(q);
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        // Let the device play out its last buffer.
        std::thread::sleep(std::time::Duration::from_millis(150));
        drop(self.stream);
        Ok(())
    }
}
