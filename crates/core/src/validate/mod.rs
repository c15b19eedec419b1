//! Validation (to be written).
use crate::{Resource, ValidationError};
pub fn validate(_r: &Resource) -> Result<(), ValidationError> { Ok(()) }
