//! A request over the message limit: tonic's decoder refuses it with
//! OUT_OF_RANGE before any handler runs, a code that reads like "bad key
//! range". This layer turns that answer into RESOURCE_EXHAUSTED (see
//! `status::message_too_large`), keeping tonic's text, which names the size
//! and the limit. FlareDB's own OUT_OF_RANGE (a watch below the retained
//! history) carries the oldest revision in its metadata and is left alone.
//!
//! The decoder's refusal is a trailers-only response (the status sits in the
//! HTTP headers), so looking at the headers is enough.

use tonic::{body::Body, Code, Status};
use tower::util::MapResponseLayer;

use crate::{service::watch::OLDEST_REVISION_HEADER, status};

type Remap = fn(http::Response<Body>) -> http::Response<Body>;

pub fn layer() -> MapResponseLayer<Remap> {
    MapResponseLayer::new(remap as Remap)
}

fn remap(resp: http::Response<Body>) -> http::Response<Body> {
    match Status::from_header_map(resp.headers()) {
        Some(s) if s.code() == Code::OutOfRange && !resp.headers().contains_key(OLDEST_REVISION_HEADER) => {
            status::message_too_large(s.message()).into_http()
        }
        _ => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_becomes_resource_exhausted_and_keeps_the_limit() {
        let tonic_says = "Error, decoded message length too large: found 5242893 bytes, the limit is: 4194304 bytes";
        let resp = remap(Status::out_of_range(tonic_says).into_http());
        let s = Status::from_header_map(resp.headers()).unwrap();
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert!(s.message().contains("4194304"), "{}", s.message());
        let ours = crate::service::watch::compacted(3, 9);
        let resp = remap(ours.into_http());
        assert_eq!(Status::from_header_map(resp.headers()).unwrap().code(), Code::OutOfRange);
        let other = remap(Status::invalid_argument("x").into_http());
        assert_eq!(Status::from_header_map(other.headers()).unwrap().code(), Code::InvalidArgument);
    }
}
