// The virtio bdev module's control operations, declared once: bdev-virtio-subsystem.ts (main
// thread) calls them, reactor-modules/virtio.ts defines them in every reactor.
import { declareControl } from '@storkit/reactor';

/** What every reactor knows of a virtio bdev (from the owner's attach). */
export interface VirtioInfo {
  id: number;
  name: string;
  owner: number;
  traddr: string;
  vq_count: number;
  vq_size: number;
  uuid: string;
  blockSize: number;
  numBlocks: number;
  writeCache: boolean;
  unmap: boolean;
  readOnly: boolean;
  maxTransfer: number;
  /** The initiator's memory (DmaRegion handle) and where the staging area starts in it. */
  handle: number;
  stageOffset: number;
  /** Staging slots per reactor. */
  slots: number;
}

export interface VirtioAttachParams {
  id: number;
  name: string;
  traddr: string;
  vq_count: number;
  vq_size: number;
  /** Reactors that will join (each gets its staging slots in the initiator's memory). */
  reactors: number;
}

/** On the owner reactor: connect to the socket and register the bdev. */
export const virtioAttach = declareControl<VirtioAttachParams, VirtioInfo>('virtio.attach');
/** On every other reactor: the same bdev, forwarding to the owner. */
export const virtioJoin = declareControl<VirtioInfo>('virtio.join');
/** Unregister this reactor's instance (the owner's hangs up); false when it has none. */
export const virtioDetach = declareControl<{ id: number }, boolean>('virtio.detach');
