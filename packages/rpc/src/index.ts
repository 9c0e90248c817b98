export { methodHelp, paramsFromArgs } from './args.js';
export { registerBuiltins } from './builtins.js';
export { RpcClient, type RpcTarget } from './client.js';
export { RpcCode, RpcError, toRpcError } from './errors.js';
export { type FrameResult, JsonFramer } from './framing.js';
export {
  type AnyMethodDef,
  defineMethod,
  type MethodContext,
  type MethodDef,
  type MethodInit,
  type MethodSpec,
  type MethodState,
  methodList,
  type ParamsOf,
} from './method.js';
export * from './schema.js';
export { RpcServer, type RpcServerOptions } from './server.js';
