//! Chunked execution of the token passes, over rayon when the `parallel`
//! feature is on. Chunks have a fixed size, so results (including the order
//! of floating-point reductions) do not depend on the number of threads.

use std::ops::Range;

/// Tokens per chunk.
pub(crate) const CHUNK: usize = 1 << 15;

/// Calls `f` on consecutive ranges of `0..n` and returns the results in order.
pub(crate) fn map_ranges<R, G>(n: usize, f: G) -> Vec<R>
where
    R: Send,
    G: Fn(Range<usize>) -> R + Sync + Send,
{
    let chunks = n.div_ceil(CHUNK);
    let range = move |c: usize| c * CHUNK..((c + 1) * CHUNK).min(n);
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        if chunks > 1 {
            return (0..chunks).into_par_iter().map(|c| f(range(c))).collect();
        }
    }
    (0..chunks).map(|c| f(range(c))).collect()
}

/// Calls `f(start, chunk)` on consecutive chunks of `data` and returns the
/// results in order.
pub(crate) fn map_chunks_mut<T, R, G>(data: &mut [T], f: G) -> Vec<R>
where
    T: Send,
    R: Send,
    G: Fn(usize, &mut [T]) -> R + Sync + Send,
{
    #[cfg(feature = "parallel")]
    {
        use rayon::prelude::*;
        if data.len() > CHUNK {
            return data
                .par_chunks_mut(CHUNK)
                .enumerate()
                .map(|(c, d)| f(c * CHUNK, d))
                .collect();
        }
    }
    data.chunks_mut(CHUNK)
        .enumerate()
        .map(|(c, d)| f(c * CHUNK, d))
        .collect()
}
