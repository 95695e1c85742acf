//! The ACL policy engine: parsing OpenBao policy documents (HCL or JSON), compiling a token's
//! policies into an [`Acl`], and deciding requests against it with OpenBao's precedence,
//! merging, parameter and wrapping rules.
//!
//! ```ignore
//! let dev = Arc::new(Policy::parse("dev", r#"path "secret/data/dev/*" { capabilities = ["read"] }"#)?);
//! let acl = Acl::new(&[dev])?;
//! assert!(acl.allow(Operation::Read, "secret/data/dev/app", &Data::new(), None).allowed);
//! assert_eq!(acl.capabilities("secret/data/dev/app"), vec!["read"]);
//! ```
//!
//! Nothing here touches storage or tokens: the policy store and the request pipeline feed
//! policies in and act on the [`Decision`].

// Nothing outside this module calls it yet; the token store and the pipeline will.
#![cfg_attr(
    not(test),
    allow(
        dead_code,
        unused_imports,
        reason = "used by the pipeline in a later change"
    )
)]

mod acl;
mod builtin;
mod capability;
mod duration;
pub(crate) mod hcl;
mod index;
mod params;
mod parse;
pub(crate) mod template;

#[cfg(test)]
mod tests;

#[cfg_attr(
    test,
    allow(
        unused_imports,
        reason = "the API the pipeline will use; tests use part of it"
    )
)]
pub(crate) use self::{
    acl::{Acl, Decision, Denial},
    builtin::{
        DEFAULT_POLICY, DEFAULT_POLICY_NAME, RESPONSE_WRAPPING_POLICY,
        RESPONSE_WRAPPING_POLICY_NAME, ROOT_POLICY_NAME,
    },
    capability::{Capabilities, Capability},
    parse::{ControlGroup, ControlGroupFactor, PathRules, Policy, RuleKind},
    template::{TemplateAlias, TemplateEntity, TemplateGroup, TemplateIdentity},
};
