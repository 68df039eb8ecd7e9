//! VGG16/19 features, Gram matrices and the style/content loss with its gradient to the input
//! image (never to the weights).
pub mod onnx;
pub mod ops;
pub mod weights;
