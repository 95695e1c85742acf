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

mod builtin;
mod capability;
mod duration;
mod hcl;
mod params;
mod parse;
mod template;

#[cfg_attr(
    test,
    allow(
        unused_imports,
        reason = "the API the pipeline will use; tests use part of it"
    )
)]
pub(crate) use self::{
    builtin::{
        DEFAULT_POLICY, DEFAULT_POLICY_NAME, RESPONSE_WRAPPING_POLICY,
        RESPONSE_WRAPPING_POLICY_NAME, ROOT_POLICY_NAME,
    },
    capability::{Capabilities, Capability},
    parse::{ControlGroup, ControlGroupFactor, PathRules, Policy, RuleKind},
    template::{TemplateAlias, TemplateEntity, TemplateGroup, TemplateIdentity},
};
