//! pacer host
