//! An ordinary C-ABI shared library with no flowrl root module; the plugin
//! host must refuse it as "not a flowrl plugin".

/// Adds one, so the library exports a symbol.
#[unsafe(no_mangle)]
pub extern "C" fn flowrl_test_add_one(x: i32) -> i32 {
    x.wrapping_add(1)
}
