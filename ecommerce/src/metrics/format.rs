//! Writing a Prometheus registry in the format the scraper asks for.
//!
//! prometheus-client writes OpenMetrics, which Prometheus asks for first. Some tools read only
//! the older Prometheus text format 0.0.4: `promtool check metrics`, and scrapers that send
//! `Accept: text/plain`. The two differ, for the metric types used here, in three ways:
//! - a counter's `HELP` and `TYPE` lines name the family (`x`) in OpenMetrics and the sample
//!   (`x_total`) in 0.0.4;
//! - 0.0.4 has no `# UNIT` lines;
//! - 0.0.4 has no `# EOF` line.
//!
//! [`encode`] converts those when the client prefers `text/plain`.

use prometheus_client::registry::Registry;

/// The OpenMetrics content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The Prometheus text format 0.0.4 content type.
pub const TEXT_004: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The registry's metrics, and their content type, in the format `accept` prefers:
/// OpenMetrics unless the `Accept` header asks for `text/plain` and not for OpenMetrics.
pub fn encode(registry: &Registry, accept: Option<&str>) -> (&'static str, String) {
    let mut openmetrics = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut openmetrics, registry);
    let wants_text = accept.is_some_and(|accept| {
        accept.contains("text/plain") && !accept.contains("application/openmetrics-text")
    });
    if wants_text {
        (TEXT_004, to_text_004(&openmetrics))
    } else {
        (OPENMETRICS, openmetrics)
    }
}

/// Converts OpenMetrics from prometheus-client (counters, gauges, histograms) to 0.0.4.
fn to_text_004(openmetrics: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"))
        {
            // The HELP line just before names the same family.
            let help = format!("# HELP {name} ");
            if let Some(last) = out.last_mut()
                && last.starts_with(&help)
            {
                *last = last.replacen(&help, &format!("# HELP {name}_total "), 1);
            }
            out.push(format!("# TYPE {name}_total counter"));
            continue;
        }
        out.push(line.to_owned());
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::gauge::Gauge;

    fn registry() -> Registry {
        let mut registry = Registry::with_prefix("demo");
        let counter = Counter::<u64>::default();
        counter.inc();
        registry.register("calls", "Calls made", counter);
        registry.register("in_flight", "Calls running", Gauge::<i64>::default());
        registry
    }

    #[test]
    fn openmetrics_by_default_and_for_prometheus_itself() {
        let prometheus_accept =
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        for accept in [None, Some(prometheus_accept), Some("*/*")] {
            let (content_type, text) = encode(&registry(), accept);
            assert_eq!(content_type, OPENMETRICS);
            assert!(text.ends_with("# EOF\n"));
        }
    }

    #[test]
    fn text_plain_gets_the_004_format() {
        let (content_type, text) = encode(&registry(), Some("text/plain"));
        assert_eq!(content_type, TEXT_004);
        assert_eq!(
            text,
            "# HELP demo_calls_total Calls made.\n# TYPE demo_calls_total counter\ndemo_calls_total 1\n\
             # HELP demo_in_flight Calls running.\n# TYPE demo_in_flight gauge\ndemo_in_flight 0\n"
        );
    }
}
