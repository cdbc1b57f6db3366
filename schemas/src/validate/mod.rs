//! Validators for the Chinese identifiers that appear in the shared records.
//!
//! Each validator checks the identifier's structure and check character, returns a parsed value (or the
//! normalised text) and, when the input is wrong, a typed error whose message says what is wrong and what was
//! expected. Connectors use them in mappings; simulators use the `*_check_char` functions and the
//! [`RegionTable`] to generate realistic data.
//!
//! - [`cert_no`]: resident ID numbers (GB 11643-1999).
//! - [`uscc`]: unified social credit codes (GB 32100-2015).
//! - [`region`]: 12-digit region codes and 15-digit grid codes, against the embedded Shaanxi division tables.
//! - [`phone`]: mainland mobile numbers.

pub mod cert_no;
pub mod phone;
pub mod region;
pub mod uscc;

pub use cert_no::{
    cert_no_check_char, is_canonical_cert_no_on, validate_cert_no, validate_cert_no_on, CertNo,
    CertNoError, Gender,
};
pub use phone::{validate_phone, PhoneError};
pub use region::{
    is_valid_grid_code, validate_grid_code, validate_region_code, GridCode, GridCodeError, Region,
    RegionCsv, RegionDataError, RegionError, RegionLevel, RegionTable,
};
pub use uscc::{is_canonical_uscc, uscc_check_char, validate_uscc, Uscc, UsccError};
