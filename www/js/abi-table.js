// ABI v1's imports, exports and status codes, generated from the core's table
// (src/interface.rs). Do not edit: `PACER_BLESS=1 cargo test --test interface` rewrites
// it, and the same test fails when it drifts.

export const ABI_VERSION = 1;
export const IMPORT_MODULE = 'pacer';

export const IMPORTS = [
  { name: 'now_ns', params: [], results: ['i64'], feature: 0 },
  { name: 'memory_used', params: [], results: ['i64'], feature: 0 },
  { name: 'memory_limit', params: [], results: ['i64'], feature: 0 },
  { name: 'random_fill', params: ['i32', 'i32'], results: [], feature: 0 },
  { name: 'log', params: ['i32', 'i32', 'i32'], results: [], feature: 0 },
];

export const EXPORTS = [
  { name: 'pacer_abi_version', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_features', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_alloc', params: ['i32'], results: ['i32'], feature: 0 },
  { name: 'pacer_dealloc', params: ['i32', 'i32'], results: [], feature: 0 },
  { name: 'pacer_configure', params: ['i32', 'i32'], results: ['i32'], feature: 0 },
  { name: 'pacer_last_error_ptr', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_last_error_len', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_try_acquire', params: ['i32', 'i32'], results: ['i64'], feature: 0 },
  { name: 'pacer_reserve', params: ['i32', 'i32'], results: ['i64'], feature: 0 },
  { name: 'pacer_available_milli', params: ['i32'], results: ['i64'], feature: 0 },
  { name: 'pacer_on_response', params: ['i32', 'i32', 'i64'], results: ['i32'], feature: 0 },
  { name: 'pacer_next_delay_ns', params: ['i32', 'i32', 'i64'], results: ['i64'], feature: 0 },
  { name: 'pacer_retry_in_ns', params: ['i32'], results: ['i64'], feature: 0 },
  { name: 'pacer_jitter_ns', params: ['i64', 'i32'], results: ['i64'], feature: 0 },
  { name: 'pacer_pressure', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_should_throttle', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_pool_target', params: ['i32'], results: ['i32'], feature: 0 },
  { name: 'pacer_state_export', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_state_ptr', params: [], results: ['i32'], feature: 0 },
  { name: 'pacer_state_import', params: ['i32', 'i32'], results: ['i32'], feature: 0 },
  { name: 'pacer_replace_ns', params: ['i32', 'i32', 'i64'], results: ['i64'], feature: 1 },
  { name: 'pacer_on_response_sent', params: ['i32', 'i32', 'i64', 'i64'], results: ['i32'], feature: 2 },
  { name: 'pacer_try_acquire_at', params: ['i64', 'i32', 'i32'], results: ['i64'], feature: 4 },
  { name: 'pacer_reserve_at', params: ['i64', 'i32', 'i32'], results: ['i64'], feature: 4 },
  { name: 'pacer_next_delay_at', params: ['i64', 'i32', 'i32', 'i64'], results: ['i64'], feature: 4 },
  { name: 'pacer_cancel', params: ['i32', 'i32', 'i64'], results: ['i32'], feature: 8 },
  { name: 'pacer_set_rate', params: ['i32', 'i64'], results: ['i32'], feature: 16 },
  { name: 'pacer_pause', params: ['i32', 'i64'], results: ['i32'], feature: 32 },
  { name: 'pacer_announce', params: ['i32', 'i64', 'i64', 'i64', 'i64'], results: ['i32'], feature: 64 },
  { name: 'pacer_rate_micro', params: ['i32'], results: ['i64'], feature: 128 },
];

export const STATUS = {
  OK: 0,
  NOT_CONFIGURED: -1,
  BAD_CONFIG: -2,
  UNKNOWN_LIMITER: -3,
  COST_EXCEEDS_BURST: -4,
  BAD_ARGUMENT: -5,
  BAD_SNAPSHOT: -6,
  CIRCUIT_OPEN: -7,
};
