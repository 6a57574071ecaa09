// The stock upstream mlir-opt parses, verifies and prints moe IR through the
// plugin, and reports moe verifier errors.
// RUN: %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext %s | FileCheck %s
// RUN: %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext %s | %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext | FileCheck %s
// RUN: %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext --load-pass-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext %s | FileCheck %s
// RUN: not %stock_mlir_opt %s 2>&1 | FileCheck %s --check-prefix=NOPLUGIN
// The passes, and the tensor form's bufferization models, through the plugin:
// RUN: moe-gen --model %moe_src_root/examples/deepseek-v3-mini.json | %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext --load-pass-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext --pass-pipeline='builtin.module(moe-optimize)' | FileCheck %s --check-prefix=OPT
// RUN: %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext --load-pass-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext %moe_src_root/test/Dialect/MoE/Transforms/bufferize.mlir -split-input-file --pass-pipeline='builtin.module(moe-bufferize)' | FileCheck %s --check-prefix=BUFFERIZE
// RUN: sed 's/outs(%o/outs(%x/' %s | not %stock_mlir_opt --load-dialect-plugin=%moe_lib_dir/libMoEMLIRPlugin%shlibext 2>&1 | FileCheck %s --check-prefix=INVALID

// CHECK-LABEL: func.func @layer
// CHECK: moe.routed_experts ins(%{{.*}}) outs(%{{.*}} : memref<?x64xbf16>)
// CHECK: moe.shared_experts
// NOPLUGIN: Dialect `moe' not found
// OPT: moe.arena
// BUFFERIZE: moe.routed_experts inplace
// INVALID: writes its output into its hidden input but is not marked 'inplace'
func.func @layer(%x: memref<?x64xbf16>, %ids: memref<?x2xi32>, %w: memref<?x2xf32>, %w13: memref<8x32x64xbf16>, %w2: memref<8x64x16xbf16>, %sw13: memref<32x64xbf16>, %sw2: memref<64x16xbf16>, %o: memref<?x64xbf16>, %sh: memref<?x64xbf16>) {
  moe.routed_experts ins(%x, %ids, %w, %w13, %w2 : memref<?x64xbf16>, memref<?x2xi32>, memref<?x2xf32>, memref<8x32x64xbf16>, memref<8x64x16xbf16>) outs(%o : memref<?x64xbf16>)
  moe.shared_experts ins(%x, %sw13, %sw2 : memref<?x64xbf16>, memref<32x64xbf16>, memref<64x16xbf16>) outs(%sh : memref<?x64xbf16>)
  return
}
