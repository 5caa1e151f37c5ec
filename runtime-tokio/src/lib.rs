//! f3dx-router-tokio: the reference driver (in progress).
