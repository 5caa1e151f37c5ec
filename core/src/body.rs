//! A response body being collected. Drivers usually hand over a small body in one piece: keeping
//! that piece as it is (a refcounted `Bytes`) saves a copy and an allocation per request; only a
//! body that arrives in several pieces is joined.

use bytes::{Bytes, BytesMut};

/// The body received so far.
#[derive(Debug, Default)]
pub(crate) struct BodyBuf {
    first: Option<Bytes>,
    joined: Option<BytesMut>,
}

impl BodyBuf {
    /// Appends a piece.
    pub(crate) fn push(&mut self, chunk: Bytes) {
        if let Some(joined) = &mut self.joined {
            joined.extend_from_slice(&chunk);
        } else if let Some(first) = self.first.take() {
            let mut joined = BytesMut::with_capacity(first.len() + chunk.len());
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&chunk);
            self.joined = Some(joined);
        } else {
            self.first = Some(chunk);
        }
    }

    /// Bytes held.
    pub(crate) fn len(&self) -> usize {
        self.joined
            .as_ref()
            .map_or_else(|| self.first.as_ref().map_or(0, Bytes::len), BytesMut::len)
    }

    /// The whole body, leaving the buffer empty.
    pub(crate) fn take(&mut self) -> Bytes {
        match (self.joined.take(), self.first.take()) {
            (Some(joined), _) => joined.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_piece_is_kept_and_several_are_joined() {
        let piece = Bytes::from_static(b"hello");
        let mut one = BodyBuf::default();
        one.push(piece.clone());
        assert_eq!(one.len(), 5);
        let whole = one.take();
        assert_eq!(whole.as_ptr(), piece.as_ptr(), "no copy for a single piece");
        let mut many = BodyBuf::default();
        for p in ["a", "bc", "def"] {
            many.push(Bytes::from(p));
        }
        assert_eq!(many.len(), 6);
        assert_eq!(many.take(), "abcdef");
        assert_eq!(many.take(), "");
    }
}
