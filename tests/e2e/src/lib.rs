//! Fixtures for the end-to-end tests: real Envoy, the sample API, a raw HTTP client, a scrape matcher.
