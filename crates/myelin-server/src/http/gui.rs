//! The files the node serves as they are: the web GUI (`gui/` in this crate, embedded at compile
//! time so the binary works offline and alone) and the OpenAPI document of the REST API
//! (`openapi.json` beside this file, checked against the route table by a test).

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The REST API's OpenAPI 3 document, served at `/v3/api-docs` (springdoc's path, as Axon Server).
pub(super) const OPENAPI_JSON: &str = include_str!("openapi.json");

const INDEX_HTML: &str = include_str!("../../gui/index.html");

/// The GUI's assets by file name: content type and content.
const ASSETS: [(&str, &str, &str); 3] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../gui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../gui/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../gui/favicon.svg"),
    ),
];

/// Assets change with the binary only; a browser may keep them for a while but revalidates
/// the page itself, so a new version is picked up on the next load.
const ASSET_CACHE: &str = "public, max-age=300";

pub(super) async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX_HTML,
    )
        .into_response()
}

pub(super) async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, ASSET_CACHE),
            ],
            *content,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON).into_response()
}
