// The native plan of a BlockLayout on a device (FlashInfer's plan()/run()): made on the layout's first use
// there (one O(nnz) check, one copy to the device) and reused by every later blockSparse call on that
// device. Held weakly: a layout that is garbage-collected takes its plans (and their device arrays) along.
import { native } from '../native';
import { parseDevice, type DeviceName } from '../device';
import { BlockLayout, layoutSizes } from './layout';

/** A native layout plan (an opaque handle). */
export type LayoutPlan = object;

const plans = new WeakMap<BlockLayout, Map<DeviceName, LayoutPlan>>();

/** @internal The plan of `layout` on `device`, made on first use. */
export function planOf(layout: BlockLayout, device: DeviceName): LayoutPlan {
  let byDevice = plans.get(layout);
  const hit = byDevice?.get(device);
  if (hit) return hit;
  const d = parseDevice(device);
  const plan = native.attention.plan(layout.rowPtr, layout.colIdx, layoutSizes(layout), d.kind, d.index, 'attention.blockSparse') as LayoutPlan;
  if (!byDevice) plans.set(layout, (byDevice = new Map()));
  byDevice.set(device, plan);
  return plan;
}
