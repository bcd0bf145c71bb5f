//! A generator that reproduces `torch.manual_seed(s); torch.randn(n)` on the CPU (float32,
//! n ≥ 16 and a multiple of 16): mt19937 seeded with `init_genrand(s)`, 24-bit uniforms, and
//! Box-Muller on blocks of 16 (values `j` and `j + 8` share one pair of uniforms).
//!
//! torch's x86 build evaluates `log`/`cos`/`sin` with vectorised routines, so values here can
//! differ from torch's in the last bit (codecs.md §4). The decoder's golden tests inject the
//! reference's noise instead; this generator is the seeded default for users.

/// The 32-bit Mersenne Twister.
pub struct Mt19937 {
    state: [u32; 624],
    index: usize,
}

impl Mt19937 {
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { state, index: 624 }
    }

    fn twist(&mut self) {
        for i in 0..624 {
            let y = (self.state[i] & 0x8000_0000) | (self.state[(i + 1) % 624] & 0x7fff_ffff);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= 0x9908_b0df;
            }
            self.state[i] = v;
        }
        self.index = 0;
    }

    pub fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

/// The first `n` values (a multiple of 16) of `torch.randn` after `torch.manual_seed(seed)`.
/// Because the transform works on independent blocks of 16, these are also the leading
/// values of any longer draw (such as the decoder's `[B, 30000, mel]` noise).
pub fn torch_randn(seed: u64, n: usize) -> Vec<f32> {
    let mut mt = Mt19937::new(seed as u32);
    let n16 = n.div_ceil(16) * 16;
    let u: Vec<f32> = (0..n16)
        .map(|_| (mt.next_u32() & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0))
        .collect();
    let mut out = vec![0f32; n16];
    for b in (0..n16).step_by(16) {
        for j in 0..8 {
            let u1 = 1.0 - u[b + j];
            let u2 = u[b + j + 8];
            let r = (-2.0 * u1.ln()).sqrt();
            let theta = 2.0 * std::f32::consts::PI * u2;
            out[b + j] = r * theta.cos();
            out[b + j + 8] = r * theta.sin();
        }
    }
    out.truncate(n);
    out
}
