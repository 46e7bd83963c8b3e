//! The budget that bounds extra calls: retries and hedges together.
//!
//! Each first call earns a tenth of a token; each retry or hedge spends a whole one. So extra
//! calls add at most about 10% to the load on discount in the long run (the Google SRE
//! book's retry budget, Finagle's and Linkerd's), however badly a replica behaves. The bucket
//! holds at most [`CAPACITY`] tokens and starts full, so a quiet catalog can still retry or
//! hedge its first few calls.

use std::sync::atomic::{AtomicU32, Ordering};

/// Tokens are counted in thousandths.
const UNIT: u32 = 1000;

/// What one first call earns: a tenth of a token.
const EARNED_PER_CALL: u32 = UNIT / 10;

/// The most tokens the bucket holds.
pub const CAPACITY: u32 = 10;

/// A shared budget of retries and hedges.
#[derive(Debug)]
pub struct RetryBudget {
    millitokens: AtomicU32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self {
            millitokens: AtomicU32::new(CAPACITY * UNIT),
        }
    }
}

impl RetryBudget {
    /// Records a first call.
    pub fn earn(&self) {
        let _ = self
            .millitokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t < CAPACITY * UNIT).then(|| (t + EARNED_PER_CALL).min(CAPACITY * UNIT))
            });
    }

    /// Takes a token for a retry or a hedge; false when the budget is spent.
    pub fn try_spend(&self) -> bool {
        self.millitokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                t.checked_sub(UNIT)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_calls_are_a_tenth_of_first_calls_once_the_bucket_is_empty() {
        let budget = RetryBudget::default();
        let mut spent = 0;
        while budget.try_spend() {
            spent += 1;
        }
        assert_eq!(spent, CAPACITY, "it starts full");
        let mut extra = 0;
        for _ in 0..1000 {
            budget.earn();
            if budget.try_spend() {
                extra += 1;
            }
        }
        assert_eq!(extra, 100);
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let budget = RetryBudget::default();
        for _ in 0..10_000 {
            budget.earn();
        }
        let spendable = (0..100).filter(|_| budget.try_spend()).count();
        assert_eq!(spendable, CAPACITY as usize);
    }
}
