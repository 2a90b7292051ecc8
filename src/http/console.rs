//! The operator console: a browser view over the UiPath API, served at `/console/`.
//!
//! Every file is built into the binary (`include_bytes!` from `console/` beside this
//! module), so the console works with no internet access and needs no build step or
//! Node toolchain: plain HTML, CSS and ES modules. The page reaches the API with the
//! operator's token from JavaScript memory, so these routes need no authentication
//! and serve nothing secret; their headers keep the page from being framed, sniffed or
//! made to run any script but its own.

use std::sync::Arc;

use actix_web::{
    HttpRequest, HttpResponse, guard,
    http::{
        StatusCode,
        header::{self, HeaderValue},
    },
    web,
};
use sha2::{Digest, Sha256};

use crate::{api_paths::TOKEN_PATH, config::Settings, http::ApiError};

/// Where the console lives.
pub const PATH: &str = "/console";

/// Scripts, styles, images and API calls from this origin only; nothing inline, no
/// `eval`, no plugins, no fonts, no framing; forms post nowhere (the sign-in form is
/// read by the script, so a secret can never end up in a URL); and, in browsers that
/// support Trusted Types, assigning markup to `innerHTML` throws.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; font-src 'none'; \
     object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
     require-trusted-types-for 'script'; trusted-types 'none'";

/// Browsers revalidate each file (one short request, answered 304 while the binary is
/// the same): the file names carry no version, so a longer cache would keep an old
/// script after an upgrade of uplift.
const CACHE_CONTROL: &str = "no-cache";

/// One embedded file: its name under `/console/` and its content type.
struct Embedded {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! embedded {
    ($($name:literal => $content_type:expr),* $(,)?) => {
        &[$(Embedded {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("console/", $name)),
        }),*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the page loads. `index.html` is served at `/console/` with the server's
/// paths and the token's tenant claim filled in.
const FILES: &[Embedded] = embedded! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "icon.svg" => "image/svg+xml",
    "main.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "session.js" => JS,
    "signin.js" => JS,
    "folders.js" => JS,
    "fleet.js" => JS,
    "operation.js" => JS,
    "history.js" => JS,
    "chart.js" => JS,
};

/// A file ready to serve: body, content type and strong ETag.
struct Asset {
    content_type: &'static str,
    body: web::Bytes,
    etag: HeaderValue,
}

impl Asset {
    fn new(content_type: &'static str, body: web::Bytes) -> Self {
        let digest = Sha256::digest(&body);
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\""))
            .expect("a quoted hex string is a valid header value");
        Asset {
            content_type,
            body,
            etag,
        }
    }

    fn respond(&self, req: &HttpRequest) -> HttpResponse {
        let fresh = req
            .headers()
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| matches_etag(tags, self.etag.to_str().unwrap_or_default()));
        let mut response = if fresh {
            HttpResponse::NotModified().finish()
        } else {
            HttpResponse::Ok()
                .insert_header((header::CONTENT_TYPE, self.content_type))
                .body(self.body.clone())
        };
        response
            .headers_mut()
            .insert(header::ETAG, self.etag.clone());
        response
    }
}

/// RFC 9110 §13.1.2: `If-None-Match` matches on `*` or any listed tag, compared weakly
/// (a `W/` prefix is ignored).
fn matches_etag(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// The console's files as served by one application.
struct Console {
    index: Asset,
    files: Vec<(&'static str, Asset)>,
}

impl Console {
    fn new(settings: &Settings) -> Self {
        let index = FILES
            .iter()
            .find(|f| f.name == "index.html")
            .expect("index.html is embedded");
        let page = String::from_utf8_lossy(index.body)
            .replace(
                "{{UIPATH_BASE}}",
                &escape_attribute(&settings.uipath_base_path()),
            )
            .replace("{{TOKEN_PATH}}", &escape_attribute(TOKEN_PATH))
            .replace(
                "{{TENANT_CLAIM}}",
                &escape_attribute(&settings.jwt_tenant_claim),
            );
        Console {
            index: Asset::new(index.content_type, web::Bytes::from(page)),
            files: FILES
                .iter()
                .filter(|f| f.name != "index.html")
                .map(|f| {
                    (
                        f.name,
                        Asset::new(f.content_type, web::Bytes::from_static(f.body)),
                    )
                })
                .collect(),
        }
    }

    fn file(&self, name: &str) -> Option<&Asset> {
        self.files.iter().find(|(n, _)| *n == name).map(|(_, a)| a)
    }
}

/// Text placed in a double-quoted HTML attribute.
fn escape_attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Serves `/console` (a redirect), `/console/` (the page) and `/console/{file}`; an
/// unknown file is a problem+json 404 naming it. Every answer under `/console`, errors
/// included, carries the security headers.
pub fn register(cfg: &mut web::ServiceConfig, settings: &Settings) {
    let console = Arc::new(Console::new(settings));
    let page = console.clone();
    cfg.service(
        web::scope(PATH)
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::X_FRAME_OPTIONS, "DENY"))
                    .add((header::REFERRER_POLICY, "no-referrer"))
                    .add((header::CACHE_CONTROL, CACHE_CONTROL)),
            )
            .service(web::resource("").route(read().to(|| async { redirect_to_page() })))
            .service(web::resource("/").route(read().to(move |req: HttpRequest| {
                let page = page.clone();
                async move { page.index.respond(&req) }
            })))
            .service(web::resource("/{file:.*}").route(read().to(
                move |req: HttpRequest, file: web::Path<String>| {
                    let console = console.clone();
                    async move {
                        match console.file(&file) {
                            Some(asset) => Ok(asset.respond(&req)),
                            None => Err(ApiError::NotFound(format!(
                                "the console has no file {:?}",
                                file.as_str()
                            ))),
                        }
                    }
                },
            ))),
    );
}

/// A route for GET and HEAD (its headers without the body); any other method on a
/// console path is a 405 naming these two.
fn read() -> actix_web::Route {
    web::route().guard(guard::Any(guard::Get()).or(guard::Head()))
}

fn redirect_to_page() -> HttpResponse {
    HttpResponse::build(StatusCode::MOVED_PERMANENTLY)
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_matches_a_listed_tag_a_weak_one_or_a_star() {
        assert!(matches_etag("\"abc\"", "\"abc\""));
        assert!(matches_etag("\"x\", W/\"abc\"", "\"abc\""));
        assert!(matches_etag("*", "\"abc\""));
        assert!(!matches_etag("\"abd\"", "\"abc\""));
        assert!(!matches_etag("", "\"abc\""));
    }

    #[test]
    fn the_page_gets_the_configured_base_path_as_an_escaped_attribute() {
        let settings = Settings {
            organization: "acme".into(),
            jwt_tenant_claim: "org\"<x>".into(),
            ..Settings::default()
        };
        let console = Console::new(&settings);
        let page = String::from_utf8(console.index.body.to_vec()).unwrap();
        assert!(
            page.contains("content=\"/acme/apps_/default/api/v1/default\""),
            "{page}"
        );
        assert!(
            page.contains("content=\"org&quot;&lt;x&gt;\""),
            "the tenant claim, escaped: {page}"
        );
        assert!(!page.contains("{{"), "every placeholder is filled");
        assert_eq!(escape_attribute("a\"<b>&"), "a&quot;&lt;b&gt;&amp;");
    }

    #[test]
    fn no_embedded_script_or_page_uses_inline_code_or_markup_injection() {
        for file in FILES {
            let text = String::from_utf8_lossy(file.body);
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
                "document.write",
                "localStorage",
                "sessionStorage",
                "document.cookie",
                " style=\"",
                "onclick=",
                "onload=",
            ] {
                assert!(!text.contains(banned), "{} uses {banned}", file.name);
            }
            if file.name.ends_with(".html") {
                assert!(!text.contains("<script>"), "{}: inline script", file.name);
                assert!(!text.contains("<style"), "{}: inline style", file.name);
                assert!(
                    !text.contains("http://") && !text.contains("https://"),
                    "{}: an outside URL",
                    file.name
                );
            }
        }
    }
}
