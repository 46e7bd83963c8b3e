//! The fault flags (discount's `faults` module), end to end: discount follows a flagd JSON
//! file, the catalog calls it, and each flag is turned on and off by rewriting the file as
//! an editor does (a temporary file renamed over it). Each change must show within
//! [`RELOAD_BOUND`]: discount looks at the file every 200 ms, and flagd's provider rereads
//! it on inotify; the bound adds slack for a busy machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use discount::faults::{FaultFlags, FlagSource};
use discount::metrics::Metrics;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::{
    CUSTOMER_1_BODY, Running, TestResponse, UNDISCOUNTED_BODY, assert_whole_catalog,
    discount_status, generated_keys, get_products, sample, scrape, spawn_catalog_for,
    spawn_discount_with,
};

/// The discount deadline in these tests.
const TIMEOUT: Duration = Duration::from_millis(300);

/// A changed flag file shows in the answers within this (see the module docs).
const RELOAD_BOUND: Duration = Duration::from_secs(3);

/// Back to complete discounts after a flag is turned off: the reload, and a breaker that
/// opened closing on the next health check (every second).
const RECOVERY_BOUND: Duration = Duration::from_secs(5);

/// A flag file in a directory of its own, rewritten the way editors do.
struct FlagFile {
    _dir: TempDir,
    path: PathBuf,
}

impl FlagFile {
    /// The demo's file: every flag off.
    fn demo() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("flags.flagd.json");
        let file = Self { _dir: dir, path };
        file.write_text(include_str!("../../../deploy/flags/demo.flagd.json"));
        file
    }

    /// Writes `text` to a temporary file beside it, then renames it over the flag file.
    fn write_text(&self, text: &str) {
        let temporary = self.path.with_extension("tmp");
        std::fs::write(&temporary, text).expect("write the temporary file");
        std::fs::rename(&temporary, &self.path).expect("rename over the flag file");
    }

    /// The demo's flags with `key` given `definition`.
    fn set(&self, key: &str, definition: Value) {
        let mut flags: Value =
            serde_json::from_str(include_str!("../../../deploy/flags/demo.flagd.json")).unwrap();
        flags["flags"][key] = definition;
        self.write_text(&flags.to_string());
    }

    /// Every flag off again.
    fn reset(&self) {
        self.write_text(include_str!("../../../deploy/flags/demo.flagd.json"));
    }
}

/// A flag that holds `value` for every call.
fn always(variant: Value) -> Value {
    json!({"state": "ENABLED", "variants": {"off": off_like(&variant), "on": variant}, "defaultVariant": "on"})
}

/// A flag that holds `value` when `rule` (JsonLogic) is true, and is off otherwise.
fn when(rule: Value, variant: Value) -> Value {
    json!({
        "state": "ENABLED",
        "variants": {"off": off_like(&variant), "on": variant},
        "defaultVariant": "off",
        "targeting": {"if": [rule, "on", "off"]},
    })
}

fn off_like(variant: &Value) -> Value {
    match variant {
        Value::Bool(_) => json!(false),
        Value::Number(_) => json!(0),
        _ => json!(""),
    }
}

/// Discount following `flags` (replica `r1`), and a catalog calling it.
struct Stack {
    catalog: Running,
    _discount: Running,
    metrics: Metrics,
    _keys: TempDir,
}

async fn start(flags: &FlagFile) -> Stack {
    let (keys_dir, keys) = generated_keys();
    let mut config = discount::Config::new(testkit::discount_tls(&keys, false));
    config.fault_flags = Some(FaultFlags {
        source: FlagSource::File(flags.path.clone()),
        replica: "r1".into(),
    });
    let metrics = config.metrics.clone();
    let discount = spawn_discount_with(config).await;
    let catalog = spawn_catalog_for(&keys, discount.addr, TIMEOUT).await;
    Stack {
        catalog,
        _discount: discount,
        metrics,
        _keys: keys_dir,
    }
}

async fn customer(catalog: SocketAddr, id: &[u8]) -> TestResponse {
    let response = get_products(catalog, &[("X-USER-ID", id)]).await;
    assert_whole_catalog(&response);
    response
}

/// Waits, within `limit`, for a customer-`id` answer with discount status `status`.
async fn wait_for_status(
    catalog: SocketAddr,
    id: &'static [u8],
    status: &'static str,
    limit: Duration,
) -> TestResponse {
    testkit::poll::within(
        limit,
        &format!("X-Discount-Status: {status}"),
        || async move {
            let response = customer(catalog, id).await;
            if discount_status(&response) == status {
                Ok(response)
            } else {
                Err(format!("{}: {}", discount_status(&response), response.body))
            }
        },
    )
    .await
}

/// A counter's value in a scrape: 0 before its series first appears.
fn counter(text: &str, series: &str) -> f64 {
    if text
        .lines()
        .any(|line| line.starts_with(&format!("{series} ")))
    {
        sample(text, series)
    } else {
        0.0
    }
}

/// How many calls discount injected `fault` into so far.
fn injected(metrics: &Metrics, fault: &str) -> f64 {
    let (_, text) = metrics.encode(None);
    counter(
        &text,
        &format!("discount_faults_injected_total{{fault=\"{fault}\"}}"),
    )
}

/// How many flag files discount read with `outcome` (`ok`, `rejected`).
fn loads(metrics: &Metrics, outcome: &str) -> f64 {
    let (_, text) = metrics.encode(None);
    counter(
        &text,
        &format!("discount_fault_flags_loads_total{{outcome=\"{outcome}\"}}"),
    )
}

/// Turns the flags off and waits for complete, exact discounts again.
async fn back_to_complete(stack: &Stack, flags: &FlagFile) {
    flags.reset();
    let response = wait_for_status(stack.catalog.addr, b"1", "complete", RECOVERY_BOUND).await;
    assert_eq!(response.body, CUSTOMER_1_BODY);
}

#[tokio::test]
async fn an_error_flag_costs_the_discounts_not_the_products_and_off_brings_them_back() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;
    assert_eq!(customer(catalog, b"1").await.body, CUSTOMER_1_BODY);

    flags.set("discountError", always(json!("INTERNAL")));
    let response = wait_for_status(catalog, b"1", "unavailable", RELOAD_BOUND).await;
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    assert!(injected(&stack.metrics, "error") >= 3.0);

    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn a_flag_aimed_at_customer_1_leaves_customer_2_alone() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    flags.set(
        "discountError",
        when(json!({"==": [{"var": "customer"}, 1]}), json!("INTERNAL")),
    );
    wait_for_status(catalog, b"1", "unavailable", RELOAD_BOUND).await;
    // In turns: customer 1's three failures never make the five in a row that would open
    // the replica's breaker (and cost customer 2 its calls too; docs/failure-scenarios.md).
    for _ in 0..10 {
        let response = customer(catalog, b"2").await;
        assert_eq!(discount_status(&response), "complete", "{}", response.body);
        assert_eq!(response.body, UNDISCOUNTED_BODY);
        let response = customer(catalog, b"1").await;
        assert_eq!(
            discount_status(&response),
            "unavailable",
            "{}",
            response.body
        );
    }
    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn an_error_aimed_at_one_product_makes_a_partial_answer() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    flags.set(
        "discountError",
        when(json!({"==": [{"var": "product"}, 2]}), json!("INTERNAL")),
    );
    let response = wait_for_status(catalog, b"1", "partial", RELOAD_BOUND).await;
    let products: Vec<Value> = serde_json::from_str(&response.body).unwrap();
    assert!(
        products[0].get("discount_value").is_some(),
        "{}",
        response.body
    );
    assert!(
        products[1].get("discount_value").is_none(),
        "{}",
        response.body
    );
    assert!(
        products[2].get("discount_value").is_some(),
        "{}",
        response.body
    );

    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn a_fractional_error_fails_a_share_of_the_calls() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    flags.set(
        "discountError",
        json!({
            "state": "ENABLED",
            "variants": {"off": "", "on": "INTERNAL"},
            "defaultVariant": "off",
            "targeting": {"fractional": [["on", 50], ["off", 50]]},
        }),
    );
    wait_for_status(catalog, b"1", "partial", RELOAD_BOUND).await;
    let (mut failed, mut answered) = (0, 0);
    for _ in 0..30 {
        let response = customer(catalog, b"1").await;
        let products: Vec<Value> = serde_json::from_str(&response.body).unwrap();
        for product in products {
            if product.get("discount_value").is_some() {
                answered += 1;
            } else {
                failed += 1;
            }
        }
    }
    // Half the calls, give or take: both kinds, many of each (the breaker, opened by a run
    // of failures, can only add full prices).
    assert!(
        answered >= 10 && failed >= 10,
        "{answered} answered, {failed} failed"
    );

    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn a_delay_past_the_deadline_falls_back_and_a_short_one_does_not() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    flags.set("discountDelayMs", always(json!(1000)));
    let response = wait_for_status(catalog, b"1", "unavailable", RELOAD_BOUND).await;
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    assert!(injected(&stack.metrics, "delay") >= 3.0);

    back_to_complete(&stack, &flags).await;
    let before = injected(&stack.metrics, "delay");
    flags.set("discountDelayMs", always(json!(20)));
    testkit::poll::within(RELOAD_BOUND, "a short delay injected", || async {
        let response = customer(catalog, b"1").await;
        let injected = injected(&stack.metrics, "delay");
        if injected > before {
            // Late, within the deadline: the discounts are all there.
            assert_eq!(discount_status(&response), "complete");
            Ok(())
        } else {
            Err(format!("{injected} delays"))
        }
    })
    .await;
}

#[tokio::test]
async fn a_hang_is_seen_by_the_health_checks_and_ends_when_turned_off() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    flags.set(
        "discountHang",
        when(json!({"==": [{"var": "replica"}, "r1"]}), json!(true)),
    );
    // Calls time out, then the health check (which hangs too) marks the replica: the
    // catalog stops calling it, and answers at once.
    let response = wait_for_status(catalog, b"1", "unavailable", RELOAD_BOUND).await;
    assert_eq!(response.body, UNDISCOUNTED_BODY);
    testkit::poll::within(
        RECOVERY_BOUND,
        "the replica marked by its health checks",
        || async {
            let text = scrape(catalog).await;
            let unreachable = counter(&text, "catalog_discount_replicas{health=\"unreachable\"}");
            if unreachable == 1.0 {
                Ok(())
            } else {
                Err(format!("{unreachable} replicas unreachable"))
            }
        },
    )
    .await;
    let response = customer(catalog, b"1").await;
    assert_eq!(discount_status(&response), "unavailable");
    let text = scrape(catalog).await;
    assert!(
        counter(
            &text,
            "catalog_discount_calls_total{outcome=\"breaker_open\"}"
        ) >= 3.0
    );
    assert!(injected(&stack.metrics, "hang") >= 1.0);

    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn a_cpu_burn_keeps_the_answers_whole() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    flags.set("discountCpuMs", always(json!(2)));
    testkit::poll::within(RELOAD_BOUND, "CPU burnt for the calls", || async {
        let response = customer(catalog, b"1").await;
        if injected(&stack.metrics, "cpu") >= 3.0 {
            assert_eq!(response.body, CUSTOMER_1_BODY);
            Ok(())
        } else {
            Err("no burn yet".into())
        }
    })
    .await;
    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn a_malformed_or_missing_file_changes_nothing() {
    let flags = FlagFile::demo();
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;

    // RESOURCE_EXHAUSTED: the catalog does not blame the replica for it, so no breaker
    // opens, and every call goes on reaching discount and its flags.
    flags.set("discountError", always(json!("RESOURCE_EXHAUSTED")));
    wait_for_status(catalog, b"1", "unavailable", RELOAD_BOUND).await;
    let broken: [&dyn Fn(&FlagFile); 3] = [
        &|flags| flags.write_text("{\"flags\": {\"discountError\": "),
        &|flags| flags.write_text("[\"not\", \"flagd\"]"),
        &|flags| std::fs::remove_file(&flags.path).expect("remove the flag file"),
    ];
    for (n, break_it) in broken.iter().enumerate() {
        let rejected = loads(&stack.metrics, "rejected");
        break_it(&flags);
        testkit::poll::within(RELOAD_BOUND, &format!("bad file {n} rejected"), || async {
            let now = loads(&stack.metrics, "rejected");
            if now > rejected {
                Ok(())
            } else {
                Err(format!("{now} rejected"))
            }
        })
        .await;
        // The last good flags hold.
        let faults = injected(&stack.metrics, "error");
        let response = customer(catalog, b"1").await;
        assert_eq!(
            discount_status(&response),
            "unavailable",
            "after bad file {n}"
        );
        assert_eq!(
            injected(&stack.metrics, "error"),
            faults + 3.0,
            "after bad file {n}"
        );
    }

    back_to_complete(&stack, &flags).await;
}

#[tokio::test]
async fn a_file_missing_at_start_means_no_faults_until_it_appears() {
    let flags = FlagFile::demo();
    std::fs::remove_file(&flags.path).expect("remove the flag file");
    let stack = start(&flags).await;
    let catalog = stack.catalog.addr;
    assert_eq!(customer(catalog, b"1").await.body, CUSTOMER_1_BODY);

    flags.set("discountError", always(json!("INTERNAL")));
    wait_for_status(catalog, b"1", "unavailable", RELOAD_BOUND).await;
    back_to_complete(&stack, &flags).await;
}
