//! Reading Prometheus samples out of a scrape, one at a time or as a table.

/// The value of the sample line that starts with `series ` (labels included); panics,
/// showing the scrape, when there is none.
pub fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
        .parse()
        .unwrap_or_else(|e| panic!("{series} is not a number ({e}) in:\n{text}"))
}

/// Asserts each `(series, value)` of `expected` against the scrape `text`, and reports
/// every mismatch at once.
pub fn assert_samples(text: &str, expected: &[(&str, f64)]) {
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|&(series, want)| {
            let got = sample(text, series);
            (got != want).then(|| format!("{series}: {got}, expected {want}"))
        })
        .collect();
    assert!(wrong.is_empty(), "{}\nin:\n{text}", wrong.join("\n"));
}
