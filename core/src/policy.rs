//! The ACL policy engine: parsing OpenBao policy documents (HCL or JSON), compiling a token's
//! policies into an ACL, and deciding requests against it.

// Nothing outside this module calls it yet; the token store and the pipeline will.
#![cfg_attr(
    not(test),
    allow(
        dead_code,
        unused_imports,
        reason = "used by the pipeline in a later change"
    )
)]

mod hcl;
