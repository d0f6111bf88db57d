//! The default build targets baseline x86-64 (SSE2). Hot elementwise loops (collect's tanh and
//! Adam, the native training step's exp, GELU, layer norm) run through [`wide`], which compiles
//! them for AVX2/FMA and picks that code at run time where the CPU has it.

/// Whether this CPU runs the AVX2/FMA code.
#[inline(always)]
pub fn has_wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Run `f`, compiled with AVX2 and FMA enabled when the CPU supports them. `f` must be small
/// enough to inline (a loop over slices), or it keeps the baseline code.
#[inline(always)]
pub fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features `avx2` is compiled for.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Define `fn name(args) -> ret { body }` twice: once for baseline x86-64 and once compiled
/// with AVX2/FMA, and call the second where the CPU has them. Unlike [`wide`], the body does
/// not depend on the optimiser inlining a closure: it is an `#[inline(always)]` function
/// called from the `target_feature` one, so everything it inlines (e.g. `exp`) vectorises
/// too. Plain argument types only (no generics).
#[macro_export]
macro_rules! wide_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::kernels::simd::has_wide() {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
