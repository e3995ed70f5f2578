//! The golden model behind the frame receiver rules, as a Link. (pending)
