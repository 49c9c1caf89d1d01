/**
 * What a host is launched as: the host type fields an instance is made from (instance type, image, launch
 * template) and the roles it is registered under. A host cannot change them in place, so a change of one on a
 * running group replaces the type's hosts. Pure.
 */
import { canonicalJson } from '../canonical.ts';
import type { HostTypeDefinition, LaunchSpec } from './model.ts';

export function launchSpecOf(type: HostTypeDefinition): LaunchSpec {
  return {
    instanceType: type.instanceType,
    roles: [...type.roles].sort(),
    ...(type.image !== undefined ? { image: type.image } : {}),
    ...(type.launchTemplate !== undefined ? { launchTemplate: type.launchTemplate } : {}),
  };
}

/** The launch spec as a mark a desired state carries (`launchedAs`), comparable as text. */
export function launchMarkOf(type: HostTypeDefinition): string {
  return canonicalJson(launchSpecOf(type));
}

export function changesLaunch(before: HostTypeDefinition, after: HostTypeDefinition): boolean {
  return launchMarkOf(before) !== launchMarkOf(after);
}
