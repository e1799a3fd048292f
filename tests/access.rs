//! Access control: placeholder, filled in below.
