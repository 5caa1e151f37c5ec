//! f3dx-router-testkit
