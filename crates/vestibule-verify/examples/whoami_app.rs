//! An app behind vestibule that greets the verified user.
//!
//! ```text
//! VESTIBULE_JWKS_URL=https://gateway.example.com/.vestibule/jwks.json \
//! VESTIBULE_ISSUER=https://gateway.example.com \
//! VESTIBULE_AUDIENCE=app.example.com \
//! cargo run -p vestibule-verify --features fetch,tower --example whoami_app -- 127.0.0.1:8081
//! ```
//!
//! Point a vestibule route with `assertion = true` at it; every request
//! without a valid `X-Vestibule-Assertion` is answered 401.

#[path = "support/whoami_app.rs"]
mod whoami_app;

use vestibule_verify::{Policy, Verifier};

fn setting(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        eprintln!("set {name} (see the comment at the top of examples/whoami_app.rs)");
        std::process::exit(2)
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".to_owned());
    let policy = Policy::new(setting("VESTIBULE_ISSUER"), setting("VESTIBULE_AUDIENCE"));
    let verifier = Verifier::fetch(&setting("VESTIBULE_JWKS_URL"), policy)?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("whoami_app on http://{listen}");
    axum::serve(listener, whoami_app::app(verifier)).await?;
    Ok(())
}
